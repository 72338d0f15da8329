"""The generation parameters every face accepts (OpenAI names, SEMOSS aliases), as one strict
serializer, and `build_request`, which turns them and the messages into a GenerationRequest.
Errors carry OpenAI's param and code, worded by jobs.faces.common.serializers.check."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework import serializers

from engine.types import GenerationRequest
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.serializers import (
    SharedFields,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    check,
)

MAX_N = 128
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_TOKENS_ALIASES = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Face-level options kept on the job, outside what the engine sees."""

    stream: bool = False
    store: bool = False
    metadata: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "store": self.store, "metadata": self.metadata or {}}


class StopField(serializers.ListField):
    """A string, or up to MAX_STOP strings."""

    expected = "a string or an array of strings"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=StrictCharField(allow_blank=True), max_length=MAX_STOP, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            self.fail("not_a_list", input_type=type(data).__name__)
        return [stop for stop in super().to_internal_value(data) if stop]


class MetadataField(serializers.DictField):
    """Up to 16 string pairs; keys up to 64 characters, values up to 512."""

    expected = "an object"
    default_error_messages = {
        "too_many": "too many properties",
        "key_too_long": "key too long",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=StrictCharField(max_length=MAX_METADATA_VALUE, allow_blank=True), **kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > MAX_METADATA_PAIRS:
            self.fail("too_many")
        if any(len(key) > MAX_METADATA_KEY for key in data):
            self.fail("key_too_long")
        return super().to_internal_value(data)


class LogitBiasField(serializers.DictField):
    """Token id -> a number from -100 to 100."""

    expected = "an object mapping token ids to numbers"
    default_error_messages = {
        "bad_token": "a key is not a token id",
        "bad_bias": "a bias is not from -100 to 100",
    }

    def to_internal_value(self, data: Any) -> dict[int, float]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        bias: dict[int, float] = {}
        for key, amount in data.items():
            try:
                token = int(key)
            except (TypeError, ValueError):
                self.fail("bad_token")
            if isinstance(amount, bool) or not isinstance(amount, int | float) or not -100 <= amount <= 100:
                self.fail("bad_bias")
            bias[token] = float(amount)
        return bias


class ResponseFormatField(serializers.DictField):
    expected = "an object with a 'type'"
    default_error_messages = {"invalid": "expected an object with a 'type'"}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not (isinstance(data, dict) and isinstance(data.get("type"), str)):
            self.fail("invalid")
        return data


class ObjectListField(serializers.ListField):
    expected = "an array of objects"
    default_error_messages = {"invalid": "expected an array of objects"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.DictField(), **kwargs)

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            self.fail("invalid")
        return data


def _output_cap() -> int:
    return int(settings.SPOOL.limits.max_output_tokens)


class GenerationParams(SharedFields):
    """Every generation parameter a face may pass on; each face says which it accepts."""

    default_error_messages = {
        "combination": "Invalid parameter combination",
        "top_logprobs": "'logprobs' must be set to true when 'top_logprobs' is used",
    }

    temperature = StrictFloatField(min_value=0, max_value=2, required=False)
    top_p = StrictFloatField(min_value=0, max_value=1, required=False)
    n = StrictIntegerField(min_value=1, max_value=MAX_N, required=False)
    stop = StopField(required=False)
    presence_penalty = StrictFloatField(min_value=-2, max_value=2, required=False)
    frequency_penalty = StrictFloatField(min_value=-2, max_value=2, required=False)
    seed = StrictIntegerField(min_value=-(2**63), max_value=2**63 - 1, required=False)
    logit_bias = LogitBiasField(required=False)
    logprobs = StrictBooleanField(required=False)
    top_logprobs = StrictIntegerField(min_value=0, max_value=MAX_TOP_LOGPROBS, required=False)
    tools = ObjectListField(required=False)
    tool_choice = serializers.JSONField(required=False)
    parallel_tool_calls = StrictBooleanField(required=False)
    response_format = ResponseFormatField(required=False)
    user = StrictCharField(required=False, allow_blank=True)
    safety_identifier = StrictCharField(required=False, allow_blank=True)
    stream = StrictBooleanField(required=False)
    store = StrictBooleanField(required=False)
    metadata = MetadataField(required=False)

    fields_context = ("max_tokens_aliases",)

    def fields_key(self) -> Hashable:
        return tuple(self.context.get("max_tokens_aliases", MAX_TOKENS_ALIASES)), _output_cap()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The output cap is a setting, read per request; every alias gets the same field.
        for name in self.context.get("max_tokens_aliases", MAX_TOKENS_ALIASES):
            cap = _output_cap()
            fields[name] = StrictIntegerField(min_value=1, max_value=cap, required=False)
        return fields


def accepted(aliases: tuple[str, ...] = MAX_TOKENS_ALIASES) -> frozenset[str]:
    """The parameter names GenerationParams validates, the max-tokens field under `aliases`: the
    set a face starts from when it says which it accepts."""
    return frozenset(GenerationParams(context={"max_tokens_aliases": aliases}).fields)


# Errors of the custom fields, as OpenAI words them: DRF code -> (message, code), by parameter.
CUSTOM_WORDING = {
    ("stop", "not_a_list"): (
        "Invalid type for 'stop': expected a string or an array of strings.", "invalid_type"
    ),
    ("metadata", "not_a_dict"): ("Invalid type for 'metadata': expected an object.", "invalid_type"),
    ("logit_bias", "not_a_dict"): (
        "Invalid type for 'logit_bias': expected an object mapping token ids to numbers.", "invalid_type"
    ),
    ("logit_bias", "bad_token"): ("Invalid key in 'logit_bias': a key is not a token id.", "invalid_value"),
    ("logit_bias", "bad_bias"): (
        "Invalid value for 'logit_bias': a bias is not a number from -100 to 100.", "invalid_value"
    ),
    ("metadata", "too_many"): (
        f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
        "properties.", "object_above_max_properties",
    ),
    ("metadata", "key_too_long"): (
        f"Invalid 'metadata': key too long. Expected keys with maximum length {MAX_METADATA_KEY}.",
        "invalid_value",
    ),
    ("response_format", "invalid"): (
        "Invalid 'response_format': expected an object with a 'type'.", "invalid_type"
    ),
}  # fmt: skip


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


def check_storable(name: str, value: Any) -> None:
    """Everything a job keeps goes to Postgres, which cannot hold these; refuse them here, in
    every face's 400, instead of failing on insert. Iterative: values may be nested deep."""
    stack = [(name, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                problem = _unstorable(key)
                if problem is not None:
                    raise FaceError(
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
                raise FaceError(
                    f"Invalid '{where}': contains {problem}, which Spool cannot store.",
                    param=where,
                    code="invalid_value",
                )


def _max_tokens(values: dict[str, Any], aliases: tuple[str, ...]) -> int | None:
    given = [name for name in aliases if values.get(name) is not None]
    if len(given) > 1:
        raise FaceError(
            f"Invalid parameter combination: '{given[0]}' and '{given[1]}' cannot both be set; "
            f"use only '{aliases[0]}'.",
            param=given[1],
            code="invalid_parameter_combination",
        )
    return values[given[0]] if given else None


def build_request(
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    known: frozenset[str],
    max_tokens_aliases: tuple[str, ...] = MAX_TOKENS_ALIASES,
) -> tuple[GenerationRequest, JobOptions]:
    """Validate params (only names in `known` are accepted) and build the engine request."""
    if len(messages) > settings.SPOOL.limits.max_messages:
        raise FaceError(
            f"Invalid 'messages': array too long. Expected an array with maximum length "
            f"{settings.SPOOL.limits.max_messages}, but got an array with length {len(messages)} instead.",
            param="messages",
            code="array_above_max_length",
        )
    refuse_unknown(params, known)
    check_storable("messages", messages)
    for name, value in params.items():
        check_storable(name, value)
    given = {name: value for name, value in params.items() if value is not None}
    values = check(GenerationParams, given, custom=CUSTOM_WORDING, max_tokens_aliases=max_tokens_aliases)
    if values.get("top_logprobs") is not None and not values.get("logprobs"):
        raise FaceError(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    request = GenerationRequest(
        messages=messages,
        max_tokens=_max_tokens(values, max_tokens_aliases),
        temperature=values.get("temperature", 1.0),
        top_p=values.get("top_p", 1.0),
        n=values.get("n", 1),
        stop=values.get("stop", []),
        seed=values.get("seed"),
        presence_penalty=values.get("presence_penalty", 0.0),
        frequency_penalty=values.get("frequency_penalty", 0.0),
        logit_bias=values.get("logit_bias", {}),
        logprobs=values.get("logprobs", False),
        top_logprobs=values.get("top_logprobs", 0),
        tools=values.get("tools", []),
        tool_choice=values.get("tool_choice"),
        parallel_tool_calls=values.get("parallel_tool_calls"),
        response_format=values.get("response_format"),
        user=values.get("user") or values.get("safety_identifier"),
    )
    options = JobOptions(
        stream=values.get("stream", False), store=values.get("store", False), metadata=values.get("metadata")
    )
    return request, options
