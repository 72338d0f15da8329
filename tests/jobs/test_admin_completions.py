"""The stored-completions admin through Django's test client: filters, search, the readable detail
page, exports, bulk delete, and pages that never count the whole table."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.admin.paging import BoundedPaginator
from jobs.models import Engine, Job, StoredCompletion
from jobs.protocols.openai_chat import completion_id

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/storedcompletion/"


@pytest.fixture(autouse=True)
def fresh_choices():
    cache.clear()  # filter choices are cached for a minute; each test sees its own rows


def make(
    metadata: dict[str, str] | None = None,
    *,
    model: str = "gpt-4o-mini",
    prompt: str = "Tell me of the king.",
    answer: str = "He had three daughters.",
    minutes_ago: int = 0,
    **response_extra: Any,
) -> StoredCompletion:
    owner = services.user_ensure(username="ann")
    engine, _ = Engine.objects.get_or_create(name=model, defaults={"kind": "offline"})
    job = Job.objects.create(owner=owner, engine=engine, request={"messages": []})
    message = {"role": "assistant", "content": answer, "refusal": None, **response_extra.pop("message", {})}
    return StoredCompletion.objects.create(
        id=completion_id(job.pk),
        owner=owner,
        job=job,
        engine=engine,
        model=model,
        face="openai",
        metadata=metadata or {},
        request={
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
            "params": {"temperature": 0.2, "store": True},
        },
        response={
            "id": completion_id(job.pk),
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            **response_extra,
        },
        usage={"input_tokens": 12, "output_tokens": 5},
        status="succeeded",
        finish_reason="stop",
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        first_token_ms=340,
        duration_ms=2150,
    )


def listed(body: str) -> set[str]:
    """The short ids shown in the list (the first 12 hex digits of each completion id)."""
    return set(re.findall(r'class="field-short_id"><a href="[^"]+">([0-9a-f]{12})</a>', body))


def short(stored: StoredCompletion) -> str:
    return stored.id.removeprefix("chatcmpl-")[:12]


def get(client: Any, query: dict[str, Any] | list[tuple[str, str]] | None = None) -> str:
    response = client.get(LIST + ("?" + urlencode(query) if query else ""))
    assert response.status_code == 200
    return response.content.decode()


# -- filters and search --------------------------------------------------------------------------


def test_the_list_shows_tokens_time_to_first_token_duration_and_metadata(admin_client):
    make({"team": "search"})
    body = get(admin_client)
    assert "12 / 5" in body and "340 ms" in body and "2.15 s" in body
    assert '<span class="spool-pair">team=search</span>' in body
    assert "Tell me of the king." in body and "He had three daughters." in body


def test_a_metadata_pair_filters_the_list(admin_client):
    search, ads = make({"team": "search"}), make({"team": "ads"})
    assert listed(get(admin_client, {"meta": "team=search"})) == {short(search)}
    assert listed(get(admin_client)) == {short(search), short(ads)}


def test_pairs_on_different_keys_combine(admin_client):
    both = make({"team": "search", "env": "prod"})
    make({"team": "search", "env": "dev"})
    make({"team": "ads", "env": "prod"})
    body = get(admin_client, [("meta", "team=search"), ("meta", "env=prod")])
    assert listed(body) == {short(both)}


def test_choosing_a_key_lists_its_values_and_each_value_links_to_its_filter(admin_client):
    make({"team": "search"})
    make({"team": "ads", "env": "prod"})
    body = get(admin_client, {"meta_key": "team"})
    values = re.findall(r'href="([^"]+)" data-metadata-value="([^"]+)"', body)
    assert {value for _, value in values} == {"search", "ads"}
    link = dict((value, href) for href, value in values)["ads"].replace("&amp;", "&")
    assert "meta=team%3Dads" in link
    keys = re.findall(r'data-metadata-key="([^"]+)"', body)
    assert sorted(keys) == ["env", "team"]


def test_choosing_a_second_value_for_a_key_replaces_the_first(admin_client):
    make({"team": "search"})
    body = get(admin_client, [("meta", "team=search"), ("meta_key", "team")])
    ads_link = re.search(r'href="([^"]+)" data-metadata-value="ads"', body)
    assert ads_link is None  # no row has team=ads: not offered
    make({"team": "ads"})
    cache.clear()
    body = get(admin_client, [("meta", "team=search"), ("meta_key", "team")])
    href = re.search(r'href="([^"]+)" data-metadata-value="ads"', body).group(1).replace("&amp;", "&")
    assert "meta=team%3Dads" in href and "team%3Dsearch" not in href


def test_key_value_typed_in_the_search_box_filters_metadata(admin_client):
    search = make({"team": "search", "note": "a=b"})
    make({"team": "ads"})
    assert listed(get(admin_client, {"q": "team=search"})) == {short(search)}
    assert listed(get(admin_client, {"q": '"note=a=b"'})) == {short(search)}


def test_words_in_the_search_box_search_message_content_only(admin_client):
    windmill = make(prompt="Tell me about windmills.")
    make(answer="Nothing about mills here, but daughters.")
    assert listed(get(admin_client, {"q": "WINDMILL"})) == {short(windmill)}
    assert listed(get(admin_client, {"q": "temperature"})) == set()  # a parameter name, not content
    assert len(listed(get(admin_client, {"q": "daughters"}))) == 2  # matches the answer too


def test_model_and_finish_reason_filters_offer_values_from_recent_rows(admin_client):
    make(model="gpt-4o")
    make(model="llama3.1")
    body = get(admin_client)
    assert "?model=gpt-4o" in body and "?model=llama3.1" in body
    assert listed(get(admin_client, {"model": "gpt-4o"})) == {
        short(StoredCompletion.objects.get(model="gpt-4o"))
    }


def test_the_metadata_filter_is_containment_which_the_gin_index_serves(admin_client):
    make({"team": "search"})
    with CaptureQueriesContext(connection) as queries:
        get(admin_client, {"meta": "team=search"})
    page_sql = [q["sql"] for q in queries if "ORDER BY" in q["sql"] and "@>" in q["sql"]]
    assert page_sql, "the page query should filter with JSONB containment (@>)"
    query = StoredCompletion.objects.filter(metadata__contains={"team": "search"})
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned anyway
        assert "storedcmpl_metadata" in query.explain()


# -- cost at size ----------------------------------------------------------------------------------


def test_no_page_counts_the_whole_table(admin_client):
    make({"team": "search"})
    for query in ({}, {"meta": "team=search"}, {"q": "king"}, {"model": "gpt-4o-mini"}, {"meta_key": "team"}):
        with CaptureQueriesContext(connection) as queries:
            get(admin_client, query)
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        assert counts and all(" LIMIT " in sql.upper() for sql in counts), counts


def test_the_date_hierarchy_never_lists_distinct_dates_of_the_rows(admin_client):
    make(minutes_ago=0)
    with CaptureQueriesContext(connection) as queries:
        body = get(admin_client)
    assert not [q["sql"] for q in queries if "DATE_TRUNC" in q["sql"].upper()]
    assert f"created_at__year={timezone.localtime().year}" in body


def test_a_filtered_count_stops_a_few_pages_ahead_and_says_more_than():
    for i in range(30):
        make({"team": "search"}, minutes_ago=i)
    rows = StoredCompletion.objects.filter(metadata__contains={"team": "search"})
    paginator = BoundedPaginator(rows, 2, page_number=1)  # 2 per page, counts up to 11 pages
    assert paginator.count == 23 and paginator.more
    assert paginator.count_label == "more than 22"
    assert len(paginator.page(11).object_list) == 2
    deep = BoundedPaginator(rows, 2, page_number=14)
    assert deep.count == 30 and not deep.more and deep.count_label == "30"


def test_an_unfiltered_count_past_the_bound_is_the_planners_estimate():
    for i in range(30):
        make(minutes_ago=i)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_storedcompletion")
    paginator = BoundedPaginator(StoredCompletion.objects.all(), 2, page_number=1)
    assert paginator.count == 30 and paginator.estimated and paginator.count_label == "about 30"


# -- detail page -----------------------------------------------------------------------------------


def test_the_detail_page_renders_the_conversation_tool_calls_logprobs_and_metadata(admin_client):
    stored = make(
        {"team": "search", "run": "42"},
        prompt="What is the weather in Rome?",
        answer="",
        message={
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "celsius"}'}}
            ],
        },
    )  # fmt: skip
    stored.response["choices"][0]["logprobs"] = {
        "content": [
            {"token": " Rome", "logprob": -0.105, "top_logprobs": [{"token": " Paris", "logprob": -2.5}]},
        ]
    }
    stored.save()
    body = admin_client.get(f"{LIST}{stored.pk}/change/").content.decode()
    conversation = body[body.index('id="spool-conversation"') : body.index('id="spool-response"')]
    assert "Be brief." in conversation and "What is the weather in Rome?" in conversation
    assert re.search(r'class="spool-role">\s*user', conversation)
    response = body[body.index('id="spool-response"') : body.index('id="spool-metadata"')]
    assert "get_weather" in response and "call_1" in response
    assert '"city": "Rome",\n  "unit": "celsius"' in response.replace("&quot;", '"')  # pretty-printed
    assert "90.0%" in response and "8.2%" in response  # exp(-0.105), exp(-2.5)
    metadata = body[body.index('id="spool-metadata"') : body.index('id="spool-params"')]
    assert "<th>run</th><td>42</td>" in metadata and "meta=run%3D42" in metadata
    assert "<th>temperature</th><td><code>0.2</code></td>" in body
    assert "Raw JSON" in body


# -- export and delete -----------------------------------------------------------------------------


def _streamed(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def test_export_as_json_lines_has_every_filtered_row_and_nothing_else(admin_client):
    wanted = {make({"team": "search"}, minutes_ago=i).id for i in range(3)}
    make({"team": "ads"})
    response = admin_client.get(f"{LIST}export/jsonl/?meta=team%3Dsearch")
    assert response["Content-Type"].startswith("application/jsonl")
    assert "attachment" in response["Content-Disposition"]
    records = [json.loads(line) for line in _streamed(response).splitlines()]
    assert {r["id"] for r in records} == wanted
    first = records[0]
    assert first["metadata"] == {"team": "search"} and first["owner"] == "ann"
    assert first["request"]["messages"][1]["content"] == "Tell me of the king."
    assert first["response"]["choices"][0]["message"]["content"] == "He had three daughters."


def test_export_as_csv_has_a_header_and_one_row_per_filtered_completion(admin_client):
    search = make({"team": "search"}, prompt='Quote "this", please')
    make({"team": "ads"})
    response = admin_client.get(f"{LIST}export/csv/?q=team%3Dsearch")
    rows = list(csv.DictReader(io.StringIO(_streamed(response))))
    assert len(rows) == 1
    assert rows[0]["id"] == search.id and rows[0]["prompt"] == 'Quote "this", please'
    assert rows[0]["prompt_tokens"] == "12" and json.loads(rows[0]["metadata"]) == {"team": "search"}


def test_an_unknown_export_format_is_not_found(admin_client):
    assert admin_client.get(f"{LIST}export/xml/").status_code == 404


def _action(ids: list[str], **extra: str) -> dict[str, Any]:
    return {"action": "delete_selected", "index": "0", "_selected_action": ids, **extra}


def test_bulk_delete_asks_with_a_count_then_deletes_the_selection_and_keeps_the_jobs(admin_client):
    doomed = [make(minutes_ago=i) for i in range(2)]
    kept = make(minutes_ago=5)
    confirm = admin_client.post(LIST, _action([s.pk for s in doomed]))
    assert confirm.status_code == 200 and 'id="spool-delete-total">2<' in confirm.content.decode()
    assert StoredCompletion.objects.count() == 3
    done = admin_client.post(LIST, _action([s.pk for s in doomed], post="yes"))
    assert done.status_code == 302
    assert list(StoredCompletion.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Job.objects.count() == 3


def test_bulk_delete_across_every_matching_row_deletes_only_the_filtered_ones(admin_client):
    newest = [make({"team": "search"}, minutes_ago=i) for i in range(3)][0]
    other = make({"team": "ads"})
    url = f"{LIST}?meta=team%3Dsearch"
    # The browser posts the boxes ticked on the page, and select_across for "all N matching".
    confirm = admin_client.post(url, _action([newest.pk], select_across="1"))
    assert 'id="spool-delete-total">3<' in confirm.content.decode()
    admin_client.post(url, _action([newest.pk], select_across="1", post="yes"))
    assert list(StoredCompletion.objects.values_list("pk", flat=True)) == [other.pk]


def test_stored_completions_cannot_be_added_or_edited_in_the_admin(admin_client):
    stored = make()
    assert admin_client.get(f"{LIST}add/").status_code == 403
    page = admin_client.get(f"{LIST}{stored.pk}/change/").content.decode()
    assert 'name="_save"' not in page
