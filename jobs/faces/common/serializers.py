"""Strict serializer fields (no string-to-number or string-to-bool coercion on JSON faces) and
`check`, which runs a serializer and words its first error as OpenAI does: one table maps each
DRF error code to OpenAI's message and code, so no field needs a hand-written check."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers

from jobs.faces.common.errors import FaceError


def kind(value: Any) -> str:
    """OpenAI's name for a JSON value's type, as its error messages use it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: no "5", no 5.0, no true."""

    expected = "an integer"

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictQueryInteger(serializers.IntegerField):
    """An integer in a query string: digits (and a sign) only, as int() reads them."""

    expected = "an integer"

    def to_internal_value(self, data: Any) -> int:
        try:
            value = int(data)
        except (TypeError, ValueError):
            self.fail("invalid")
        return super().to_internal_value(value)


class StrictFloatField(serializers.FloatField):
    """A finite JSON number: no "0.5", no true."""

    expected = "a decimal"

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false: no "yes", no 1."""

    expected = "a boolean"

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string: no number turned into one."""

    expected = "a string"

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _number_kind(field: serializers.Field) -> str:
    return "integer" if isinstance(field, serializers.IntegerField) else "decimal"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(field: serializers.Field) -> str:
    allowed = [str(c) for c in field.choices]
    if len(allowed) < 3:
        return " and ".join(f"'{a}'" for a in allowed)
    return ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"


Wording = Callable[[str, serializers.Field, Any], tuple[str, str]]

# DRF's error code -> (OpenAI's message, OpenAI's code), given the param, the field and the value.
WORDING: dict[str, Wording] = {
    "required": lambda p, f, v: (f"Missing required parameter: '{p}'.", "missing_required_parameter"),
    "null": lambda p, f, v: (f"Missing required parameter: '{p}'.", "missing_required_parameter"),
    "invalid": lambda p, f, v: (
        f"Invalid type for '{p}': expected {getattr(f, 'expected', 'a valid value')}, but got {kind(v)} "
        "instead.",
        "invalid_type",
    ),
    "min_value": lambda p, f, v: (
        f"Invalid '{p}': {_number_kind(f)} below minimum value. Expected a value >= {_fmt(f.min_value)}, "
        f"but got {_fmt(v)} instead.",
        f"{_number_kind(f)}_below_min_value",
    ),
    "max_value": lambda p, f, v: (
        f"Invalid '{p}': {_number_kind(f)} above maximum value. Expected a value <= {_fmt(f.max_value)}, "
        f"but got {_fmt(v)} instead.",
        f"{_number_kind(f)}_above_max_value",
    ),
    "invalid_choice": lambda p, f, v: (
        f"Invalid value: '{v}'. Supported values are: {_choices(f)}.",
        "invalid_value",
    ),
    "max_length": lambda p, f, v: (
        f"Invalid '{p}': string too long. Expected a string with maximum length {f.max_length}, but got "
        f"a string with length {len(v)} instead.",
        "string_above_max_length",
    ),
}


def _first_error(
    errors: Any, fields: Mapping[str, serializers.Field], data: Any
) -> tuple[str, str, Any, Any]:
    """(param, DRF code, field, value) of the first error."""
    name, detail = next(iter(errors.items()))
    if isinstance(detail, list):
        detail = detail[0]
    value = data.get(name) if isinstance(data, Mapping) else None
    return name, getattr(detail, "code", "invalid"), fields.get(name), value


def check(serializer_class: type[serializers.Serializer], data: Any, **context: Any) -> dict[str, Any]:
    """The serializer's validated data, or a FaceError worded as OpenAI words it."""
    serializer = serializer_class(data=data, context=context)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    if "non_field_errors" in errors:
        detail = errors["non_field_errors"][0]
        raise FaceError(str(detail), code=getattr(detail, "code", None))
    param, code, field, value = _first_error(errors, serializer.fields, data)
    wording = WORDING.get(code)
    if wording is None or field is None:
        detail = errors[param][0] if isinstance(errors[param], list) else errors[param]
        raise FaceError(str(detail), param=param, code=code)
    message, openai_code = wording(param, field, value)
    raise FaceError(message, param=param, code=openai_code)
