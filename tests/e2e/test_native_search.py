"""GET /v1/jobs/completions: stored completions searched by what was said, through the running
server: exact matches for words, phrases and exclusions, filters, paging, ownership, errors."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.openai_helpers import NO_EOT, OFFLINE, client

pytestmark = pytest.mark.e2e


def store(spool, prompt: str, run: str, **metadata: str) -> str:
    done = client(spool).chat.completions.create(
        model=OFFLINE, messages=[{"role": "user", "content": prompt}], max_tokens=1, logit_bias=NO_EOT,
        store=True, metadata={"run": run, **metadata},
    )  # fmt: skip
    return done.id


def search(spool, key: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{spool.base_url}/v1/jobs/completions", params=params, headers={"Authorization": f"Bearer {key}"}
    )


@pytest.fixture(scope="module")
def stored(spool):
    run = uuid.uuid4().hex[:12]
    ids = {
        "windmills": store(spool, f"Tell of the windmills of Castile {run}", run, topic="spain"),
        "moon": store(spool, f"The moon rose over Paris {run}", run, topic="france"),
        "both": store(spool, f"Windmills under the moon {run}", run, topic="spain"),
    }
    return run, ids


def ids_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["data"]}


def test_words_phrases_and_exclusions_find_exactly_the_right_completions(spool, stored):
    run, ids = stored
    key = spool.alice.secret_key
    assert ids_of(search(spool, key, q=f"windmills {run}")) == {ids["windmills"], ids["both"]}
    assert ids_of(search(spool, key, q=f'"windmills of Castile" {run}')) == {ids["windmills"]}
    assert ids_of(search(spool, key, q=f"moon -Paris {run}")) == {ids["both"]}
    assert ids_of(search(spool, key, q=f"(castile or paris) {run}")) == {ids["windmills"], ids["moon"]}


def test_a_phrase_of_words_that_never_stand_together_finds_nothing(spool, stored):
    run, ids = stored
    key = spool.alice.secret_key
    # "moon" and "windmills" share a row ("Windmills under the moon"), never side by side.
    assert ids_of(search(spool, key, q=f'"moon windmills" {run}', order="desc", limit="100")) == set()
    assert ids_of(search(spool, key, q=f'"windmills under the moon" {run}', order="desc")) == {ids["both"]}


def test_search_combines_with_metadata_and_pages_like_openai(spool, stored):
    run, ids = stored
    key = spool.alice.secret_key
    spain = search(spool, key, q=run, **{"metadata[topic]": "spain"})
    assert ids_of(spain) == {ids["windmills"], ids["both"]}
    first = search(spool, key, q=run, limit="1", order="desc").json()
    assert first["object"] == "list" and first["has_more"] is True and len(first["data"]) == 1
    rest = search(spool, key, q=run, order="desc", after=first["last_id"])
    assert ids_of(rest) | {first["last_id"]} == set(ids.values())
    ranked = search(spool, key, q=f"windmills {run}", order="relevance")
    assert ids_of(ranked) == {ids["windmills"], ids["both"]}


def test_another_key_finds_nothing_of_alices(spool, stored):
    run, _ = stored
    assert ids_of(search(spool, spool.bob.secret_key, q=run)) == set()


def test_bad_queries_are_clear_400s(spool, stored):
    key = spool.alice.secret_key
    relevance = search(spool, key, order="relevance")
    assert relevance.status_code == 400 and relevance.json()["error"]["param"] == "order"
    unknown = search(spool, key, q="x", after="chatcmpl-nope")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "after"
    limit = search(spool, key, limit="1000")
    assert limit.status_code == 400 and limit.json()["error"]["param"] == "limit"
