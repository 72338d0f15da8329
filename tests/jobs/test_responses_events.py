"""The fold of a chunk log into Responses events: pure, so any split of the log into pages gives
the same numbered events, and the snapshot agrees with the stream; ids and statuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.responses import job_id_of, response_id, status_of
from jobs.responses.events import ResponseFold, fold, response_object

JOB_ID = uuid.UUID("0123456789abcdef0123456789abcdef")


def _job(**options: Any) -> Any:
    return SimpleNamespace(
        pk=JOB_ID,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        engine=SimpleNamespace(name="fake"),
        options={"store": True, **options},
        request={"max_tokens": None, "temperature": 1.0, "top_p": 1.0},
        status="succeeded",
        finish_reason="tool_calls",
    )


LOG = [
    {"type": "content", "data": {"content": "Let me "}},
    {"type": "content", "data": {"content": "check."}},
    {"type": "tool", "data": {"index": 0, "id": "call_a", "name": "weather", "arguments": ""}},
    {"type": "tool", "data": {"index": 0, "arguments": '{"location":'}},
    {"type": "tool", "data": {"index": 0, "arguments": '"Boston"}'}},
    {
        "type": "tool",
        "data": {"index": 1, "id": "call_b", "name": "weather", "arguments": '{"location":"Oslo"}'},
    },
    {"type": "usage", "data": {"input_tokens": 7, "output_tokens": 9}},
    {"type": "finish", "data": {"finish_reason": "tool_calls"}},
]


def test_the_events_are_numbered_from_zero_without_gaps_and_end_with_completed():
    state, events = fold(_job(), LOG)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events][:6] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
    ]
    assert events[-1]["type"] == "response.completed" and events[-1]["response"] == state.snapshot()
    output = state.snapshot()["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    assert output[0]["content"][0]["text"] == "Let me check."
    assert [(i["call_id"], i["arguments"]) for i in output[1:]] == [
        ("call_a", '{"location":"Boston"}'),
        ("call_b", '{"location":"Oslo"}'),
    ]
    assert all(item["status"] == "completed" for item in output)
    assert state.snapshot()["usage"]["total_tokens"] == 16


@pytest.mark.parametrize("background", [False, True])
def test_folding_any_prefix_gives_a_prefix_of_the_events_so_a_resume_from_any_n_is_the_suffix(background):
    _, everything = fold(_job(background=background), LOG)
    for cut in range(len(LOG) + 1):
        _, first = fold(_job(background=background), LOG[:cut])
        assert everything[: len(first)] == first
        # The rest, as a stream resumed at the last number seen gets it: fed chunk by chunk.
        state = ResponseFold(_job(background=background))
        state.prologue()
        for chunk in LOG[:cut]:
            state.feed(chunk)
        rest = [e for chunk in LOG[cut:] for e in state.feed(chunk)]
        assert first + rest == everything
    for n in range(-1, len(everything)):
        assert [e for e in everything if e["sequence_number"] > n] == everything[n + 1 :]


def test_a_background_response_is_created_queued_then_in_progress():
    _, events = fold(_job(background=True), LOG[:1])
    assert [(e["type"], e["response"]["status"]) for e in events[:3]] == [
        ("response.created", "queued"),
        ("response.queued", "queued"),
        ("response.in_progress", "in_progress"),
    ]


def test_output_cut_by_the_token_cap_is_incomplete():
    log = [LOG[0], {"type": "usage", "data": {}}, {"type": "finish", "data": {"finish_reason": "length"}}]
    state, events = fold(_job(), log)
    assert events[-1]["type"] == "response.incomplete"
    assert state.snapshot()["incomplete_details"] == {"reason": "max_output_tokens"}
    assert state.snapshot()["output"][0]["status"] == "incomplete"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("cancelled", "cancelled", None),
        ("upstream_error", "failed", {"code": "upstream_error", "message": "x"}),
    ],
)
def test_an_error_ends_the_stream_with_response_failed(code, status, error):
    log = [LOG[0], {"type": "error", "data": {"code": code, "message": "x"}}]
    state, events = fold(_job(), log)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == status and events[-1]["response"]["error"] == error
    assert state.snapshot()["output"][0]["status"] == "incomplete"


def test_a_live_job_answers_with_its_own_status_and_the_output_so_far():
    job = _job(background=True)
    job.status = "running"
    body = response_object(job, LOG[:2])
    assert body["status"] == "in_progress" and body["output"][0]["content"][0]["text"] == "Let me check."
    job.status = "queued"
    assert response_object(job, [])["status"] == "queued"


def test_ids_go_both_ways_and_foreign_ones_are_refused():
    assert response_id(JOB_ID) == "resp_0123456789abcdef0123456789abcdef"
    assert job_id_of(response_id(JOB_ID)) == str(JOB_ID)
    for foreign in ("chatcmpl-0123456789abcdef0123456789abcdef", "resp_xyz", "resp_" + "0" * 31, "resp_"):
        assert job_id_of(foreign) is None


@pytest.mark.parametrize(
    ("job_status", "reason", "status"),
    [
        ("succeeded", "stop", "completed"),
        ("succeeded", "tool_calls", "completed"),
        ("succeeded", "length", "incomplete"),
        ("failed", "upstream_error", "failed"),
        ("cancelled", "cancelled", "cancelled"),
        ("queued", "", "queued"),
        ("running", "", "in_progress"),
    ],
)
def test_the_status_mapping(job_status, reason, status):
    assert status_of(job_status, reason) == status
