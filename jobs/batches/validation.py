"""The checks a batch's input file passes before any line runs, line by line as it streams from
storage, with OpenAI's codes and words: JSON, custom_id (present, unique), method, URL, body,
model, and the number of requests. A file that fails any is not run at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jobs import jsonbody

# OpenAI reports errors per line; past this many, the rest add nothing a user needs.
MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(frozen=True, slots=True)
class Line:
    """A line that passed: its custom_id and request body."""

    custom_id: str
    body: dict[str, Any]


def requests(raw_lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """The lines that hold something, numbered from 1 as a text editor numbers them."""
    for number, raw in enumerate(raw_lines, start=1):
        if raw.strip():
            yield number, raw


def parse(raw: bytes, number: int, endpoint: str) -> Line | LineError:
    """One line's own checks (all but the ones across lines: duplicates, model, count)."""
    try:
        item = jsonbody.loads(raw)
    except ValueError:
        return LineError("invalid_json_line", "This line is not parseable as valid JSON.", number)
    if not isinstance(item, dict):
        return LineError("invalid_json_line", "This line is not a JSON object.", number)
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return LineError(
            "missing_required_parameter", "Missing required parameter: 'custom_id'.", number, "custom_id"
        )
    if len(custom_id) > 512:
        return LineError(
            "invalid_value", "The 'custom_id' must be at most 512 characters long.", number, "custom_id"
        )
    method = item.get("method")
    if not isinstance(method, str) or method.upper() != "POST":
        return LineError(
            "invalid_method",
            f"The method of this request is {method!r}; only POST is supported.",
            number,
            "method",
        )
    if item.get("url") != endpoint:
        return LineError(
            "invalid_url",
            f"The URL provided for this request does not match the batch endpoint {endpoint}.",
            number,
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        return LineError(
            "missing_required_parameter",
            "Missing required parameter: 'body' (a JSON object).",
            number,
            "body",
        )
    if not isinstance(body.get("model"), str) or not body["model"]:
        return LineError(
            "missing_required_parameter", "Missing required parameter: 'body.model'.", number, "body.model"
        )
    return Line(custom_id, body)


@dataclass
class Outcome:
    total: int
    errors: list[LineError]


def validate(
    raw_lines: Iterable[bytes], endpoint: str, model_ok: Callable[[str], bool], max_lines: int
) -> Outcome:
    """Reads every line once (the custom ids seen are all this keeps); `model_ok` says whether a
    model may be used, asked once per model."""
    seen: set[str] = set()
    models: dict[str, bool] = {}
    errors: list[LineError] = []
    total = 0
    for number, raw in requests(raw_lines):
        total += 1
        if total > max_lines:
            errors.append(
                LineError(
                    "too_many_requests",
                    f"The input file holds more than {max_lines:,} requests; a batch may hold at most "
                    f"{max_lines:,}.",
                    number,
                )
            )
            break
        parsed = parse(raw, number, endpoint)
        error = _across(parsed, number, seen, models, model_ok) if isinstance(parsed, Line) else parsed
        if error is not None:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
    if total == 0 and not errors:
        errors.append(LineError("empty_file", "The input file contains no requests."))
    return Outcome(total, errors)


def _across(
    line: Line, number: int, seen: set[str], models: dict[str, bool], model_ok: Callable[[str], bool]
) -> LineError | None:
    if line.custom_id in seen:
        return LineError(
            "duplicate_custom_id",
            "The custom_id for this request is a duplicate of another request. The custom_id "
            "parameter must be unique for each individual request in a batch.",
            number,
            "custom_id",
        )
    seen.add(line.custom_id)
    model = line.body["model"]
    if model not in models:
        models[model] = model_ok(model)
    if not models[model]:
        return LineError(
            "model_not_found",
            f"The provided model '{model}' is not supported by the Batch API: no such model, or this "
            "key may not use it.",
            number,
            "body.model",
        )
    return None
