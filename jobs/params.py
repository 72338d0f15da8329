"""Turns client parameters (OpenAI names, SEMOSS aliases) into a validated GenerationRequest.

Errors follow OpenAI's wording and codes so both faces report the same thing the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from engine.types import GenerationRequest

MAX_N = 128
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class ParamError(ValueError):
    def __init__(self, message: str, *, param: str | None, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Face-level options kept on the job, outside what the engine sees."""

    stream: bool = False
    store: bool = False
    metadata: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "store": self.store, "metadata": self.metadata or {}}


def _number(params: dict, name: str, low: float, high: float) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParamError(
            f"Invalid type for '{name}': expected a decimal, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise ParamError(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > high:
        raise ParamError(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_above_max_value",
        )
    return float(value)


def _integer(params: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise ParamError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if high is not None and value > high:
        raise ParamError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def _boolean(params: dict, name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ParamError(
            f"Invalid type for '{name}': expected a boolean, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def _stop(params: dict) -> list[str]:
    value = params.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ParamError(
            "Invalid type for 'stop': expected a string or an array of strings.",
            param="stop",
            code="invalid_type",
        )
    if len(stops) > MAX_STOP:
        raise ParamError(
            f"Invalid 'stop': array too long. Expected an array with maximum length {MAX_STOP}, "
            f"but got an array with length {len(stops)} instead.",
            param="stop",
            code="array_above_max_length",
        )
    return [s for s in stops if s]


def _logit_bias(params: dict) -> dict[int, float]:
    value = params.get("logit_bias")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamError(
            "Invalid type for 'logit_bias': expected an object mapping token ids to numbers.",
            param="logit_bias",
            code="invalid_type",
        )
    bias: dict[int, float] = {}
    for key, amount in value.items():
        try:
            token_id = int(key)
        except (TypeError, ValueError):
            raise ParamError(
                f"Invalid key in 'logit_bias': {key!r} is not a token id.",
                param="logit_bias",
                code="invalid_value",
            ) from None
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not -100 <= amount <= 100:
            raise ParamError(
                f"Invalid value for 'logit_bias' token {key}: expected a number from -100 to 100.",
                param="logit_bias",
                code="invalid_value",
            )
        bias[token_id] = float(amount)
    return bias


def _metadata(params: dict) -> dict[str, str] | None:
    value = params.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ParamError(
            "Invalid type for 'metadata': expected an object.", param="metadata", code="invalid_type"
        )
    if len(value) > MAX_METADATA_PAIRS:
        raise ParamError(
            f"Invalid 'metadata': too many properties. Expected an object with at most "
            f"{MAX_METADATA_PAIRS} properties, but got an object with {len(value)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ParamError(
                f"Invalid 'metadata': key too long. Expected a key with maximum length "
                f"{MAX_METADATA_KEY}, but got a key with length {len(key)} instead.",
                param="metadata",
                code="invalid_value",
            )
        if not isinstance(item, str):
            raise ParamError(
                f"Invalid type for 'metadata.{key}': expected a string, but got "
                f"{type(item).__name__} instead.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(item) > MAX_METADATA_VALUE:
            raise ParamError(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length {MAX_METADATA_VALUE}, but got a string with length {len(item)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(value)


def _max_tokens(params: dict, aliases: tuple[str, ...]) -> int | None:
    given = [name for name in aliases if params.get(name) is not None]
    if len(given) > 1:
        raise ParamError(
            f"Invalid parameter combination: '{given[0]}' and '{given[1]}' cannot both be set; "
            f"use only '{aliases[0]}'.",
            param=given[1],
            code="invalid_parameter_combination",
        )
    return _integer(params, given[0], 1, settings.SPOOL["MAX_OUTPUT_TOKENS"]) if given else None


def _list_of_objects(params: dict, name: str) -> list[dict]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ParamError(
            f"Invalid type for '{name}': expected an array of objects.", param=name, code="invalid_type"
        )
    return value


def _unstorable(value: Any) -> str | None:
    """What keeps a value out of Postgres (jsonb and text), if anything."""
    if isinstance(value, float) and not math.isfinite(value):
        return "a number that is not finite"
    if isinstance(value, str):
        if "\x00" in value:
            return "a NUL character (U+0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "an unpaired surrogate (a \\uD800-\\uDFFF escape without its pair)"
    return None


def _check_storable(name: str, value: Any) -> None:
    """Everything a job keeps goes to Postgres, which cannot hold these; refuse them here, in
    every face's 400, instead of failing on insert. Iterative: values may be nested deep."""
    stack = [(name, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                problem = _unstorable(key)
                if problem is not None:
                    raise ParamError(
                        f"Invalid '{where}': a key contains {problem}, which Spool cannot store.",
                        param=where,
                        code="invalid_value",
                    )
                stack.append((f"{where}.{key}", inner))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))
        else:
            problem = _unstorable(item)
            if problem is not None:
                raise ParamError(
                    f"Invalid '{where}': contains {problem}, which Spool cannot store.",
                    param=where,
                    code="invalid_value",
                )


def build_request(
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    known: frozenset[str],
    max_tokens_aliases: tuple[str, ...] = ("max_completion_tokens", "max_tokens"),
) -> tuple[GenerationRequest, JobOptions]:
    """Validate params (only names in `known` are accepted) and build the engine request."""
    if len(messages) > settings.SPOOL["MAX_MESSAGES"]:
        raise ParamError(
            f"Invalid 'messages': array too long. Expected an array with maximum length "
            f"{settings.SPOOL['MAX_MESSAGES']}, but got an array with length {len(messages)} instead.",
            param="messages",
            code="array_above_max_length",
        )
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParamError(
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )
    _check_storable("messages", messages)
    for name, value in params.items():
        _check_storable(name, value)
    logprobs = _boolean(params, "logprobs") or False
    top_logprobs = _integer(params, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise ParamError(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    response_format = params.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and isinstance(response_format.get("type"), str)
    ):
        raise ParamError(
            "Invalid 'response_format': expected an object with a 'type'.",
            param="response_format",
            code="invalid_type",
        )
    user = params.get("user") or params.get("safety_identifier")
    if user is not None and not isinstance(user, str):
        raise ParamError("Invalid type for 'user': expected a string.", param="user", code="invalid_type")
    seed = _integer(params, "seed", -(2**63), 2**63 - 1)
    request = GenerationRequest(
        messages=messages,
        max_tokens=_max_tokens(params, max_tokens_aliases),
        temperature=_number(params, "temperature", 0, 2) if "temperature" in params else 1.0,
        top_p=_number(params, "top_p", 0, 1) if "top_p" in params else 1.0,
        n=_integer(params, "n", 1, MAX_N) or 1,
        stop=_stop(params),
        seed=seed,
        presence_penalty=_number(params, "presence_penalty", -2, 2) or 0.0,
        frequency_penalty=_number(params, "frequency_penalty", -2, 2) or 0.0,
        logit_bias=_logit_bias(params),
        logprobs=logprobs,
        top_logprobs=top_logprobs or 0,
        tools=_list_of_objects(params, "tools"),
        tool_choice=params.get("tool_choice"),
        parallel_tool_calls=_boolean(params, "parallel_tool_calls"),
        response_format=response_format,
        user=user,
    )
    if request.temperature is None:
        request.temperature = 1.0
    if request.top_p is None:
        request.top_p = 1.0
    options = JobOptions(
        stream=_boolean(params, "stream") or False,
        store=_boolean(params, "store") or False,
        metadata=_metadata(params),
    )
    return request, options
