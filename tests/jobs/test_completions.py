"""Stored completions against real Postgres (kept at job end, paged, filtered by metadata through
the GIN index) and the OpenAI face's renderer and request rules, without a server."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.utils import timezone

from engine import registry
from engine.types import CONTENT, ERROR, FINISH, TOOL, USAGE, GenerationRequest
from jobs import completions, paging, services
from jobs.faces.common.errors import FaceError
from jobs.faces.openai.chat import parse_create
from jobs.models import Engine, Job, StoredCompletion
from jobs.placement import BATCH, Placement
from jobs.protocols import openai_chat as render
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)


def C(text: str, choice: int = 0, logprobs: list | None = None) -> dict:
    return {"type": CONTENT, "data": {"content": text}, "choice": choice, "logprobs": logprobs}


def F(reason: str, choice: int = 0) -> dict:
    return {"type": FINISH, "data": {"finish_reason": reason}, "choice": choice}


U = {"type": USAGE, "data": {"input_tokens": 7, "output_tokens": 2}}


def run_job(
    script: list[dict],
    options: dict[str, Any],
    *,
    owner: str = "ann",
    placement: Placement | None = None,
    **request: Any,
) -> Job:
    user = services.user_ensure(username=owner)
    engine = Engine.objects.create(
        name=f"scripted-{uuid.uuid4().hex[:6]}", kind="scripted", config={"script": script}
    )
    job = services.job_create(
        owner=user,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}], **request),
        options=options,
        face="openai",
        placement=placement,
    )
    job_run(job_id=str(job.pk))
    return Job.objects.select_related("engine").get(pk=job.pk)


# -- kept at job end ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the worker loop's own connections must see the job
def test_a_job_with_store_is_kept_with_request_response_usage_metadata_and_timings():
    job = run_job(
        [C("Hel"), C("lo"), F("stop"), U],
        {"store": True, "metadata": {"team": "a"}, "service_tier": "flex"},
        placement=Placement(priority=BATCH),  # what the face makes of flex
        max_tokens=9,
        seed=3,
    )
    stored = StoredCompletion.objects.get()
    assert stored.id == render.completion_id(job.pk) == "chatcmpl-" + job.pk.hex
    assert stored.job_id == job.pk and stored.owner_id == job.owner_id and stored.engine_id == job.engine_id
    assert stored.model == job.engine.name and stored.face == "openai"
    assert stored.metadata == {"team": "a"}
    assert stored.request == {
        "messages": [{"role": "user", "content": "hi"}],
        "params": {
            "max_tokens": 9,
            "seed": 3,
            "store": True,
            "metadata": {"team": "a"},
            "service_tier": "flex",
        },
    }
    assert stored.response == render.completion(job)
    assert stored.response["choices"][0]["message"]["content"] == "Hello"
    assert stored.response["service_tier"] == "flex"
    assert stored.usage == {"input_tokens": 7, "output_tokens": 2}
    assert (stored.status, stored.finish_reason) == ("succeeded", "stop")
    assert stored.created_at == job.created_at
    assert stored.first_token_ms == round((job.first_chunk_at - job.created_at).total_seconds() * 1000)
    assert stored.duration_ms == round((job.finished_at - job.created_at).total_seconds() * 1000)


@pytest.mark.django_db(transaction=True)  # the worker loop's own connections must see the job
def test_a_job_without_store_is_not_kept():
    run_job([C("x"), F("stop"), U], {"store": False, "metadata": {"team": "a"}})
    run_job([C("x"), F("stop"), U], {})
    assert not StoredCompletion.objects.exists()


@pytest.mark.django_db(transaction=True)  # the worker loop's own connections must see the job
def test_a_stored_job_is_found_by_what_the_model_said():
    job = run_job([C("Ships "), C("of Tyre"), F("stop")], {"store": True})
    user = services.user_ensure(username="ann")
    page = async_to_sync(completions.completion_page)(user.pk, q='"ships of tyre"')
    assert [row.id for row in page.items] == [render.completion_id(job.pk)]
    assert async_to_sync(completions.completion_page)(user.pk, q='"tyre of ships"').items == []


@pytest.mark.django_db(transaction=True)  # the worker loop's own connections must see the job
def test_a_failed_job_with_store_is_kept_with_its_status_and_partial_output():
    job = run_job([C("par"), {"raise": "boom"}], {"store": True})
    stored = StoredCompletion.objects.get(job=job)
    assert (stored.status, stored.finish_reason) == ("failed", "upstream_error")
    assert stored.response["choices"][0]["message"]["content"] == "par"
    assert stored.response["choices"][0]["finish_reason"] == "upstream_error"


# -- listing -----------------------------------------------------------------------------------


def make_stored(owner: str, n: int, metadata: dict[str, str] | None = None, model: str = "m") -> list[str]:
    """n stored completions a second apart, oldest first; returns their ids."""
    user = services.user_ensure(username=owner)
    engine, _ = Engine.objects.get_or_create(name=model, defaults={"kind": "offline"})
    start = timezone.now() - timedelta(hours=1)
    ids = []
    for i in range(n):
        job = Job.objects.create(owner=user, engine=engine, request={"messages": []})
        row = StoredCompletion.objects.create(
            id=render.completion_id(job.pk),
            owner=user,
            job=job,
            engine=engine,
            model=model,
            face="openai",
            metadata={**(metadata or {}), "i": str(i)},
            request={"messages": []},
            response={"id": render.completion_id(job.pk)},
            status="succeeded",
            created_at=start + timedelta(seconds=i),
        )
        ids.append(row.id)
    return ids


def page(owner: str, **kwargs: Any) -> paging.Page:
    user = services.user_ensure(username=owner)
    return async_to_sync(completions.completion_page)(user.pk, **kwargs)


def test_pages_follow_creation_order_and_after_continues_where_the_last_page_ended():
    ids = make_stored("ann", 5)
    first = page("ann", limit=2)
    assert [r.id for r in first.items] == ids[:2] and first.has_more
    second = page("ann", limit=2, after=ids[1])
    assert [r.id for r in second.items] == ids[2:4] and second.has_more
    last = page("ann", limit=2, after=ids[3])
    assert [r.id for r in last.items] == ids[4:] and not last.has_more
    backwards = page("ann", limit=3, order="desc", after=ids[4])
    assert [r.id for r in backwards.items] == ids[3::-1][:3] and backwards.has_more


def test_equal_creation_times_still_page_without_loss_or_repeat():
    ids = make_stored("ann", 4)
    StoredCompletion.objects.update(created_at=timezone.now())
    seen, after = [], None
    while True:
        got = page("ann", limit=1, after=after)
        seen += [r.id for r in got.items]
        if not got.has_more:
            break
        after = seen[-1]
    assert seen == sorted(ids)


def test_metadata_filters_must_all_match_and_model_and_owner_narrow_the_list():
    ids = make_stored("ann", 3, {"team": "a"})
    make_stored("ann", 2, {"team": "b"}, model="other")
    make_stored("bob", 2, {"team": "a"})
    assert [r.id for r in page("ann", metadata={"team": "a"}).items] == ids
    assert [r.id for r in page("ann", metadata={"team": "a", "i": "1"}).items] == [ids[1]]
    assert page("ann", metadata={"team": "a", "i": "9"}).items == []
    assert len(page("ann", model="other").items) == 2
    assert len(page("ann").items) == 5


def test_an_after_that_names_nothing_of_the_owners_is_refused():
    bobs = make_stored("bob", 1)
    with pytest.raises(paging.UnknownCursor):
        page("ann", after=bobs[0])


def test_the_metadata_filter_is_served_by_the_gin_index():
    make_stored("ann", 3, {"team": "a"})
    query = StoredCompletion.objects.filter(metadata__contains={"team": "a"})
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned anyway
        plan = query.explain()
    assert "storedcmpl_metadata" in plan


def test_messages_are_the_request_messages_with_ids_and_text_from_parts():
    stored = StoredCompletion(
        id="chatcmpl-x",
        request={
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]},
            ]
        },
    )
    items = completions.message_items(stored)
    assert [(m["id"], m["content"]) for m in items] == [
        ("chatcmpl-x-0", "a"),
        ("chatcmpl-x-1", "bc"),
        ("chatcmpl-x-2", None),
    ]
    assert items[1]["content_parts"][0] == {"type": "text", "text": "b"} and items[2]["tool_calls"] == [
        {"id": "t"}
    ]
    first = completions.messages_page(stored, after=None, limit=2, order="asc")
    assert [m["id"] for m in first.items] == ["chatcmpl-x-0", "chatcmpl-x-1"] and first.has_more
    rest = completions.messages_page(stored, after="chatcmpl-x-1", limit=2, order="asc")
    assert [m["id"] for m in rest.items] == ["chatcmpl-x-2"] and not rest.has_more


# -- rendering ---------------------------------------------------------------------------------


def fake_job(n: int = 1, options: dict | None = None, **request: Any) -> Job:
    return Job(
        id=uuid.uuid4(),
        engine=Engine(name="eng"),
        request={"messages": [], "n": n, **request},
        options=options or {},
        created_at=timezone.now(),
    )


def rendered(job: Job, chunks: list[dict]) -> list[dict]:
    renderer = render.StreamRenderer(job)
    out = [obj for raw in chunks for obj in renderer.feed(raw)]
    assert renderer.done
    return out


def test_choices_first_appear_in_ascending_order_with_role_once_each():
    end = {"type": FINISH, "data": {"finish_reason": "stop", "choices": ["stop", "length", "stop"]}}
    out = rendered(fake_job(n=3), [C("b", choice=1), C("a"), C("c", choice=2), C("a2"), end])
    choices = [c for obj in out for c in obj["choices"]]
    assert list(dict.fromkeys(c["index"] for c in choices)) == [0, 1, 2]
    for index in range(3):
        mine = [c for c in choices if c["index"] == index]
        assert sum("role" in c["delta"] for c in mine) == 1 and "role" in mine[0]["delta"]
        assert [c["finish_reason"] for c in mine][-1] == ["stop", "length", "stop"][index]
        assert all(c["finish_reason"] is None for c in mine[:-1])
    assert all("usage" not in obj for obj in out)


def test_a_repeated_tool_id_or_name_is_never_sent_twice():
    out = rendered(
        fake_job(),
        [
            {"type": TOOL, "data": {"index": 0, "id": "call_a", "name": "f", "arguments": "{"}},
            {"type": TOOL, "data": {"index": 0, "id": "call_a", "name": "f"}},
            {"type": TOOL, "data": {"index": 0, "arguments": "}"}},
            {"type": FINISH, "data": {"finish_reason": "tool_calls"}},
        ],
    )
    calls = [t for obj in out for c in obj["choices"] for t in c["delta"].get("tool_calls", [])]
    assert calls == [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{"}},
        {"index": 0, "function": {"arguments": "}"}},
    ]
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": None}


def test_usage_is_a_last_chunk_with_no_choices_only_when_asked():
    chunks = [C("a"), U, {"type": FINISH, "data": {"finish_reason": "stop"}}]
    asked = rendered(fake_job(options={"include_usage": True}), chunks)
    assert asked[-1]["choices"] == [] and asked[-1]["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
    }
    assert all(obj["usage"] is None for obj in asked[:-1])
    assert all("usage" not in obj for obj in rendered(fake_job(), chunks))


def test_an_error_chunk_becomes_the_error_envelope():
    out = rendered(
        fake_job(),
        [C("a"), {"type": ERROR, "data": {"code": "cancelled", "message": "The job was cancelled."}}],
    )
    assert out[-1] == {
        "error": {
            "message": "The job was cancelled.",
            "type": "invalid_request_error",
            "param": None,
            "code": "cancelled",
        }
    }


def test_the_json_answer_has_null_content_beside_tool_calls_and_logprobs_only_when_asked():
    job = fake_job(logprobs=False)
    call = {"id": "c", "name": "f", "arguments": "{}"}
    choice = {"content": "", "thinking": "hmm", "tool_calls": [call], "finish_reason": "tool_calls"}
    job.result = {"choices": [choice], "usage": {"input_tokens": 1, "output_tokens": 1}}
    body = render.completion(job)
    message = body["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": "{}",
    }
    assert message["reasoning_content"] == "hmm"
    assert body["choices"][0]["logprobs"] is None
    entry = {"token": "x", "logprob": -1.0, "bytes": [120], "top_logprobs": []}
    job = fake_job(logprobs=True)
    job.result = {"choices": [{"content": "x", "tool_calls": [], "finish_reason": "stop"}], "usage": None}
    job.chunks = [C("x", logprobs=[entry]), U]
    assert render.completion(job)["choices"][0]["logprobs"] == {"content": [entry], "refusal": None}


# -- request rules -----------------------------------------------------------------------------

HI = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": HI}, "model", "missing_required_parameter"),
        ({"model": 5, "messages": []}, "model", "invalid_type"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        (
            {
                "model": "m",
                "messages": HI,
                "stream": True,
                "stream_options": {"include_usage": True, "chunk": 1},
            },
            "stream_options.chunk",
            "unknown_parameter",
        ),
        (
            {"model": "m", "messages": [{"role": "assistant"}]},
            "messages[0].content",
            "missing_required_parameter",
        ),
        ({"model": "m", "messages": HI, "modalities": ["audio"]}, "modalities", "unsupported_value"),
    ],
)
def test_request_rules_name_the_param_and_code(body, param, code):
    with pytest.raises(FaceError) as caught:
        parse_create(body)
    assert (caught.value.param, caught.value.code, caught.value.status) == (param, code, 400)


def test_face_options_travel_with_the_job():
    chat = parse_create(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "store": True,
            "metadata": {"k": "v"},
            "service_tier": "priority",
            "max_completion_tokens": 5,
        }
    )
    assert chat.stream and chat.include_usage and chat.request.max_tokens == 5
    assert chat.options == {
        "stream": True,
        "store": True,
        "metadata": {"k": "v"},
        "include_usage": True,
        "service_tier": "priority",
    }
