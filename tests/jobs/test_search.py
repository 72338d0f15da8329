"""Full-text search of stored completions against real Postgres: what is indexed, websearch syntax
(phrases, or, exclusion), ownership, the admin's search box and the selector agreeing, the index
the query uses, the batched backfill and the language setting."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import completions, search, services
from jobs.models import Engine, Job, StoredCompletion
from jobs.protocols.openai_chat import completion_id
from tests.spoolenv import spool_read

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/storedcompletion/"


@pytest.fixture(autouse=True)
def fresh_choices():
    cache.clear()


def make(
    prompt: Any = "Tell me of the king.",
    answer: str | None = "He had three daughters.",
    *,
    owner: str = "ann",
    metadata: dict[str, str] | None = None,
    system: str = "Be brief.",
) -> StoredCompletion:
    """A stored completion written as any writer would: the trigger gives it its vector."""
    user = services.user_ensure(username=owner)
    engine, _ = Engine.objects.get_or_create(name="m", defaults={"kind": "offline"})
    job = Job.objects.create(owner=user, engine=engine, request={"messages": []})
    return StoredCompletion.objects.create(
        id=completion_id(job.pk),
        owner=user,
        job=job,
        engine=engine,
        model="m",
        face="openai",
        metadata=metadata or {},
        request={
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            "params": {"temperature": 0.2},
        },
        response={"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]},
        status="succeeded",
        created_at=timezone.now() - timedelta(seconds=StoredCompletion.objects.count()),
    )


def found(text: str, owner: str = "ann") -> set[str]:
    """Ids the selector returns for `text` (every page)."""
    user = services.user_ensure(username=owner)
    page = async_to_sync(completions.completion_page)(user.pk, q=text, limit=completions.MAX_LIMIT)
    assert not page.has_more
    return {row.id for row in page.items}


def admin_found(client: Any, text: str) -> set[str]:
    response = client.get(f"{LIST}?{urlencode({'q': text})}")
    assert response.status_code == 200
    shorts = set(
        re.findall(r'class="field-short_id"><a href="[^"]+">([0-9a-f]{12})</a>', response.content.decode())
    )
    return {
        row.id for row in StoredCompletion.objects.all() if row.id.removeprefix("chatcmpl-")[:12] in shorts
    }


# -- what is indexed -------------------------------------------------------------------------------


def test_words_are_found_in_prompts_and_answers_stemmed_and_case_folded():
    windmill = make("Tell me about WINDMILLS.", "Sails turn.")
    daughters = make("Who?", "He had three daughters.")
    assert found("windmill") == {windmill.id}
    assert found("Daughter") == {daughters.id}
    assert found("sails turning") == {windmill.id}


def test_roles_keys_and_parameters_are_not_searched():
    make("Hello there", "General Kenobi")
    assert found("temperature") == set()
    assert found("assistant") == set()
    assert found("content") == set()


def test_text_parts_of_a_message_are_searched_and_their_type_is_not():
    parts = make(
        [{"type": "text", "text": "A tale of windmills"}, {"type": "image_url", "image_url": {"url": "x"}}]
    )
    assert found("windmill") == {parts.id}
    assert found("image_url") == set()
    assert found("text") == set()


def test_a_response_rewritten_later_is_searched_by_its_new_text():
    row = make("Hi", "sunrise")
    StoredCompletion.objects.filter(pk=row.pk).update(
        response={"choices": [{"message": {"content": "moonrise"}}]}
    )
    assert found("sunrise") == set()
    assert found("moonrise") == {row.id}


# -- websearch syntax --------------------------------------------------------------------------


def test_a_quoted_phrase_matches_only_those_words_in_that_order():
    exact = make("Speak.", "He had three daughters.")
    make("Speak.", "Daughters, three of them.")  # both words, other order
    make("Speak.", "Three wise daughters.")  # a word between them
    make("He counted three", "daughters, said the fool.")  # across two messages
    assert found('"three daughters"') == {exact.id}
    assert len(found("three daughters")) == 4  # without quotes, both words anywhere


def test_an_excluded_word_removes_every_row_that_has_it():
    keep = make("Of the king's daughters.", "Goneril spoke first.")
    make("Of the king's daughters.", "Cordelia said nothing.")
    make("Of the king's daughters.", "Then CORDELIA left.")
    assert found("daughters -cordelia") == {keep.id}
    assert found('daughters -"cordelia said"') == found("daughters") - found('"cordelia said"')


def test_or_takes_either_word():
    a, b = make("windmill"), make("lighthouse")
    make("barn")
    assert found("windmill or lighthouse") == {a.id, b.id}


def test_only_stop_words_match_nothing_and_odd_input_is_no_error():
    make("the and of", "it is")
    assert found("the") == set()
    assert found('"unbalanced -') == set()
    assert found("a & b | !c (d") == set()


# -- ownership and agreement -----------------------------------------------------------------------


def test_the_selector_searches_only_the_owners_rows():
    ann = make("windmills", owner="ann")
    bob = make("windmills", owner="bob")
    assert found("windmill", owner="ann") == {ann.id}
    assert found("windmill", owner="bob") == {bob.id}
    assert found("windmill", owner="carl") == set()


def test_the_selector_combines_words_with_metadata_and_pages_by_cursor():
    rows = [make(f"windmill number {i}", metadata={"team": "a"}) for i in range(5)]
    make("windmill", metadata={"team": "b"})
    user = services.user_ensure(username="ann")
    page = async_to_sync(completions.completion_page)
    first = page(user.pk, q="windmill", metadata={"team": "a"}, limit=3, order="desc")
    assert [r.id for r in first.items] == [r.id for r in rows[:3]] and first.has_more
    rest = page(
        user.pk, q="windmill", metadata={"team": "a"}, limit=3, order="desc", after=first.items[-1].id
    )
    assert [r.id for r in rest.items] == [r.id for r in rows[3:]] and not rest.has_more


def test_relevance_puts_the_best_match_first_and_its_cursor_continues_it():
    once = make("A windmill.", "Sails.")
    thrice = make("Windmills, windmills.", "A windmill turns.")
    twice = make("Windmill", "windmill")
    make("Nothing here.", "Sails.")
    user = services.user_ensure(username="ann")
    page = async_to_sync(completions.completion_page)
    first = page(user.pk, q="windmill", order="relevance", limit=2)
    assert [r.id for r in first.items] == [thrice.id, twice.id] and first.has_more
    rest = page(user.pk, q="windmill", order="relevance", limit=2, after=first.items[-1].id)
    assert [r.id for r in rest.items] == [once.id] and not rest.has_more


def test_ties_in_relevance_page_newest_first_without_loss_or_repeat():
    rows = [make("windmill") for _ in range(5)]  # equal ranks; make() dates each one older
    user = services.user_ensure(username="ann")
    seen, after = [], None
    while True:
        got = async_to_sync(completions.completion_page)(
            user.pk, q="windmill", order="relevance", limit=2, after=after
        )
        seen += [r.id for r in got.items]
        if not got.has_more:
            break
        after = seen[-1]
    assert seen == [r.id for r in rows]


def test_the_admin_ranks_search_results_when_asked_as_the_selector_does(admin_client):
    make("A windmill.", "Sails.")
    make("Windmills, windmills.", "A windmill turns.")
    make("Windmill", "windmill")
    body = admin_client.get(f"{LIST}?{urlencode({'q': 'windmill', 'by': 'relevance'})}").content.decode()
    shown = re.findall(r'class="field-short_id"><a href="[^"]+">([0-9a-f]{12})</a>', body)
    user = services.user_ensure(username="ann")
    ranked = async_to_sync(completions.completion_page)(user.pk, q="windmill", order="relevance")
    assert shown == [r.id.removeprefix("chatcmpl-")[:12] for r in ranked.items]
    assert "most relevant first" in body
    newest = admin_client.get(f"{LIST}?{urlencode({'q': 'windmill'})}").content.decode()
    assert re.findall(r'class="field-short_id"><a href="[^"]+">([0-9a-f]{12})</a>', newest) != shown


QUERIES = ["daughters", '"three daughters"', "daughters -cordelia", "windmill or cordelia", "king", "nothing"]


def test_the_admin_search_box_and_the_selector_agree(admin_client):
    make("Of the king's daughters.", "He had three daughters.")
    make("Of the king's daughters.", "Cordelia said nothing.")
    make("Tell me about windmills.", "Sails.")
    make("Three wise daughters.", "Nothing more.")
    for text in QUERIES:
        assert admin_found(admin_client, text) == found(text), text


def test_the_admin_search_box_takes_words_phrases_and_metadata_pairs_together(admin_client):
    hit = make("Of the king's daughters.", "He had three daughters.", metadata={"team": "legal"})
    make("Of the king's daughters.", "He had three daughters.", metadata={"team": "ads"})
    make("Of the king's daughters.", "Three wise daughters.", metadata={"team": "legal"})
    make("Of the king's daughters.", "He had three daughters. Cordelia", metadata={"team": "legal"})
    assert admin_found(admin_client, 'king "three daughters" team=legal -cordelia') == {hit.id}
    assert admin_found(admin_client, '"team=legal"') == admin_found(admin_client, "team=legal")


# -- cost at size ----------------------------------------------------------------------------------


def test_the_match_is_served_by_the_gin_index_on_the_vector():
    make("windmills")
    query = search.matching(StoredCompletion.objects.all(), '"three daughters" -king')
    with connection.cursor() as cursor:
        # A tiny table would be scanned, or walked in date order, anyway: leave the planner only
        # bitmap scans, which is how a GIN index is read, so the plan shows whether it can be.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = query.explain()
    assert "storedcmpl_search" in plan


def seven_windmills(monkeypatch: pytest.MonkeyPatch, *, show_all: int, **metadata: str) -> None:
    """Seven matches of 'windmill', listed two a page, "Show all" offered up to `show_all`."""
    from jobs.admin.completions import StoredCompletionAdmin

    monkeypatch.setattr(StoredCompletionAdmin, "list_per_page", 2)
    monkeypatch.setattr(StoredCompletionAdmin, "list_max_show_all", show_all)
    for i in range(7):
        make(f"windmill {i}", metadata=metadata)


def test_search_results_count_only_past_the_page_shown(admin_client, monkeypatch):
    seven_windmills(monkeypatch, show_all=2, team="a")
    with CaptureQueriesContext(connection) as queries:
        first = admin_client.get(f"{LIST}?q=windmill").content.decode()
    assert "more than 2" in first and "?p=2&amp;q=windmill" in first  # a next page, no count of all
    assert [q["sql"] for q in queries if "COUNT(" in q["sql"] and " LIMIT 3)" in q["sql"]]
    assert "more than 4" in admin_client.get(f"{LIST}?q=windmill&p=2").content.decode()
    assert "7 stored completions" in admin_client.get(f"{LIST}?q=windmill&p=4").content.decode()
    assert "7 stored completions" in admin_client.get(f"{LIST}?q=team%3Da").content.decode()  # metadata only


def test_show_all_is_never_offered_for_a_count_that_is_only_a_floor(admin_client, monkeypatch):
    seven_windmills(monkeypatch, show_all=4)
    first = admin_client.get(f"{LIST}?q=windmill").content.decode()
    assert "more than 4" in first and "showall" not in first  # counted up to "show all", not 2
    every = admin_client.get(f"{LIST}?q=windmill&all=").content.decode()
    assert every.count('class="field-short_id"') == 2  # still one page, not all 7
    for row in StoredCompletion.objects.all()[:3]:
        row.delete()
    few = admin_client.get(f"{LIST}?q=windmill").content.decode()
    assert (
        "showall" in few
        and admin_client.get(f"{LIST}?q=windmill&all=").content.decode().count('class="field-short_id"') == 4
    )


# -- a page in date order, whichever way the planner would go -------------------------------------

# Rows where "daughter" and "lord" are both said, never side by side, and a few where they are.
APART = ["My lord, your daughter waits.", "The daughter spoke; the lord said nothing.", "Lord! A daughter!"]
TOGETHER = ["The daughter lord of nothing.", "A daughter lord, they said."]
SHAPES = [
    '"daughter lord"', '"lord daughter"', '"said nothing"', "daughter", "lord -daughter", "lord -lord",
    "daughter or nothing", 'daughter -"daughter lord"', "said",
]  # fmt: skip


@pytest.fixture
def common_words():
    """Both words in every row, so that a phrase's estimate is as high as it goes."""
    apart = [make(APART[i % len(APART)], "Said nothing.") for i in range(24)]
    together = [make(TOGETHER[i % len(TOGETHER)], "Said nothing.") for i in range(0, 24, 6)]
    return apart, together


def pages(text: str, wanted: int, order: tuple[str, ...] = ("-created_at", "-id")) -> tuple[list, list]:
    """The first `wanted` rows of a search, as the planner would read them (plain `@@`) and as
    in_date_order gives them."""
    rows = StoredCompletion.objects.order_by(*order)
    plain = list(search.matching(rows, text).values_list("id", flat=True)[:wanted])
    ordered = list(search.in_date_order(rows, text, wanted=wanted).values_list("id", flat=True)[:wanted])
    return plain, ordered


def by_index(text: str, wanted: int) -> bool:
    """Whether in_date_order took the GIN index's way (the walk did not fill `wanted` rows)."""
    with CaptureQueriesContext(connection) as queries:
        search.in_date_order(StoredCompletion.objects.order_by("-created_at", "-id"), text, wanted=wanted)
    return any("enable_seqscan = off" in q["sql"] for q in queries)


def test_a_phrase_of_two_common_words_that_never_stand_together_finds_nothing(common_words):
    assert pages('"lord daughter"', 5) == ([], [])
    assert by_index('"lord daughter"', 5)
    assert found('"lord daughter"') == set()
    assert found('"daughter lord"') == {row.id for row in common_words[1]}


@pytest.mark.parametrize("window", [10_000, 7])  # the whole table, or 7 rows of it
def test_every_shape_gives_the_rows_plain_matching_gives_by_either_way(common_words, window, monkeypatch):
    monkeypatch.setattr(search, "WINDOW", window)
    for text in SHAPES:
        for wanted in (2, 5, 29, 101):  # a walk that fills its page, and one that does not
            plain, ordered = pages(text, wanted)
            assert ordered == plain, (text, wanted)
            oldest_first = pages(text, wanted, ("created_at", "id"))
            assert oldest_first[1] == oldest_first[0], (text, wanted)
    # Both ways were taken: a common word fills 2 rows within its window, a phrase of none does not.
    assert not by_index("daughter", 2) and by_index('"lord daughter"', 2)


def test_a_phrase_is_narrowed_by_its_pairs_and_the_pairs_index_serves_them(common_words):
    pairs = search.Pairs(F("search"))
    have = dict(StoredCompletion.objects.annotate(pairs=pairs).values_list("id", "pairs"))
    together = {row.id for row in common_words[1]}
    assert {pk for pk, held in have.items() if "daughter lord" in held} == together
    assert search.phrase_pairs('"daughter lord" -"good lord" or nothing') == (
        [],
        False,
    )  # one branch of an or
    assert search.phrase_pairs('"the daughter lord" said') == (["daughter lord"], False)
    assert search.phrase_pairs('"The daughter, lord"') == (["daughter lord"], True)  # the pair is the query
    query = search.matching_by_pairs(StoredCompletion.objects.all(), '"lord daughter"', ["lord daughter"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = query.explain()
    # The pairs index alone: the word index's phrase rows would be rechecked with the function.
    assert "storedcmpl_search_pairs" in plan and not re.search(r"storedcmpl_search\b", plan)
    assert list(query) == []


def test_more_matches_than_ids_carried_read_on_by_the_walk(common_words, monkeypatch):
    monkeypatch.setattr(search, "IDS_LIMIT", 3)
    assert pages("daughter", 101)[1] == pages("daughter", 101)[0] != []
    assert pages('"lord daughter"', 101) == ([], [])


def test_the_api_pages_a_rare_phrase_by_its_cursor_without_loss_or_repeat(common_words):
    user = services.user_ensure(username="ann")
    page = async_to_sync(completions.completion_page)
    seen, after = [], None
    while True:
        got = page(user.pk, q='"daughter lord"', limit=1, order="desc", after=after)
        seen += [r.id for r in got.items]
        if not got.has_more:
            break
        after = seen[-1]
    assert seen == [r.id for r in common_words[1]]  # make() dates each row older than the last
    assert page(user.pk, q='"lord daughter"', limit=100).items == []


NEVER = '"lord daughter"'


def test_the_admin_finds_nothing_for_a_phrase_that_never_stands_together(admin_client, common_words):
    body = admin_client.get(f"{LIST}?{urlencode({'q': NEVER})}").content.decode()
    assert 'class="field-short_id"' not in body and "0 results" in body
    assert admin_found(admin_client, '"daughter lord"') == {row.id for row in common_words[1]}


# -- the admin's counts ------------------------------------------------------------------------------


def result_count(body: str) -> str:
    """What the search bar says beside the box ("" when it says nothing)."""
    said = re.search(r'class="small quiet spool-result-count">(.*?)</span>', body, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", said.group(1)).split()) if said else ""


def pagination(body: str) -> str:
    said = re.search(r'<p class="paginator">(.*?)</p>', body, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", said.group(1)).split()) if said else ""


def test_the_admin_says_one_count_and_a_floor_reads_as_a_floor(admin_client, monkeypatch):
    seven_windmills(monkeypatch, show_all=2)
    floor = admin_client.get(f"{LIST}?q=windmill").content.decode()
    assert result_count(floor) == "more than 2 results (clear the search and filters)"
    assert pagination(floor).endswith("more than 2 stored completions")
    assert "3 results" not in floor and "Show all" not in floor  # not the bounded count's last number
    assert "Select every matching stored completion (more than 2)" in floor
    assert "Select all 3" not in floor and "All 3 selected" not in floor
    exact = admin_client.get(f"{LIST}?q=windmill+3").content.decode()
    assert result_count(exact) == "1 result (clear the search and filters)"
    assert pagination(exact).endswith("1 stored completion")
    whole = admin_client.get(LIST).content.decode()
    assert result_count(whole) == ""  # the pagination line says it for the whole table


def test_an_export_and_a_delete_across_a_search_take_every_match_not_one_page(admin_client, monkeypatch):
    seven_windmills(monkeypatch, show_all=2)  # a page reads 3 matches at most
    make("no mill here")
    exported = b"".join(admin_client.get(f"{LIST}export/jsonl/?q=windmill").streaming_content)
    assert len(exported.decode().splitlines()) == 7
    first = StoredCompletion.objects.order_by("-created_at").first()
    action = {"action": "delete_selected", "index": "0", "_selected_action": [first.pk], "select_across": "1"}
    confirm = admin_client.post(f"{LIST}?q=windmill", action).content.decode()
    assert 'id="spool-delete-total">7<' in confirm
    admin_client.post(f"{LIST}?q=windmill", {**action, "post": "yes"})
    assert StoredCompletion.objects.count() == 1


def test_the_backfill_fills_every_missing_vector_in_batches_and_only_those():
    rows = [make(f"windmill {i}") for i in range(7)]
    # An UPDATE of the vector alone does not fire the trigger: as the rows of a table the
    # migration found were, before the backfill.
    StoredCompletion.objects.filter(pk__in=[r.pk for r in rows[:5]]).update(search=None)
    assert found("windmill") == {r.id for r in rows[5:]}
    seen: list[int] = []
    assert search.backfill(batch=2, progress=seen.append) == 5
    assert seen[-1] == 5 and len(seen) == 4  # 7 rows in batches of 2
    assert found("windmill") == {r.id for r in rows}
    assert search.backfill(batch=2) == 0


def test_a_new_language_applies_to_every_row_after_a_rebuild():
    row = make("Tell me about windmills.")
    with override_settings(SPOOL=spool_read(SPOOL_SEARCH_CONFIG="simple")):
        # Queries use the new language at once; the row still holds English stems ("windmil").
        assert found("windmills") == set() and found("about") == set()
        search.install()
        assert search.backfill(rebuild=True) == 1
        assert found("windmills") == {row.id} and found("windmill") == set()  # no stemming
        assert found("about") == {row.id}  # "simple" keeps stop words


def test_a_language_that_is_not_a_name_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    bad = spool_read(SPOOL_SEARCH_CONFIG="english'; DROP TABLE x; --")
    with override_settings(SPOOL=bad), pytest.raises(ImproperlyConfigured):
        search.config()
