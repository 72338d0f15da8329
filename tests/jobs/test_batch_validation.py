"""A batch input file's checks, line by line, with OpenAI's codes: what a user reads in the
batch's `errors` when a file is refused."""

from __future__ import annotations

import json

from jobs.batches.validation import MAX_ERRORS, validate

CHAT = "/v1/chat/completions"


def line(custom_id: str = "a", model: str = "m", **overrides: object) -> bytes:
    item = {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {"model": model, "messages": []}}
    return json.dumps({**item, **overrides}).encode() + b"\n"


def codes(raw: list[bytes], max_lines: int = 100) -> list[tuple[str, int | None]]:
    outcome = validate(raw, CHAT, lambda model: model == "m", max_lines)
    return [(e.code, e.line) for e in outcome.errors]


def test_a_good_file_counts_its_requests_and_skips_blank_lines():
    outcome = validate([line("a"), b"\n", b"   \n", line("b")], CHAT, lambda m: True, 10)
    assert (outcome.total, outcome.errors) == (2, [])


def test_each_bad_line_is_named_by_its_line_number_in_the_file():
    raw = [
        line("a"),
        b"\n",
        b"{oops\n",
        b"[1, 2]\n",
        line("a"),
        line("b", url="/v1/embeddings"),
        line("c", method="GET"),
        line("d", model="gone"),
        json.dumps({"method": "POST", "url": CHAT, "body": {"model": "m"}}).encode(),
        line("e", body="text"),
        line("f", body={"messages": []}),
        line("", model="m"),
    ]
    assert codes(raw) == [
        ("invalid_json_line", 3),
        ("invalid_json_line", 4),
        ("duplicate_custom_id", 5),
        ("invalid_url", 6),
        ("invalid_method", 7),
        ("model_not_found", 8),
        ("missing_required_parameter", 9),
        ("missing_required_parameter", 10),
        ("missing_required_parameter", 11),
        ("missing_required_parameter", 12),
    ]


def test_the_message_of_a_duplicate_is_openai_s():
    [error] = validate([line("a"), line("a")], CHAT, lambda m: True, 10).errors
    assert error.to_dict() == {
        "code": "duplicate_custom_id",
        "message": "The custom_id for this request is a duplicate of another request. The custom_id "
        "parameter must be unique for each individual request in a batch.",
        "param": "custom_id",
        "line": 2,
    }


def test_a_model_is_looked_up_once_however_many_lines_name_it():
    asked: list[str] = []
    validate([line(str(i)) for i in range(5)], CHAT, lambda m: asked.append(m) or True, 10)
    assert asked == ["m"]


def test_more_requests_than_allowed_fail_at_the_first_one_too_many():
    assert codes([line(str(i)) for i in range(4)], max_lines=3) == [("too_many_requests", 4)]


def test_an_empty_file_is_an_error():
    assert codes([b"\n", b""]) == [("empty_file", None)]


def test_errors_stop_being_collected_past_the_cap():
    outcome = validate([b"{\n"] * (MAX_ERRORS + 50), CHAT, lambda m: True, 10_000)
    assert len(outcome.errors) == MAX_ERRORS
