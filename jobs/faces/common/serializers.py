"""Strict serializer fields (no string-to-number or string-to-bool coercion on JSON faces) and
`check`, which runs a serializer and words its first error as OpenAI does: one table maps each
DRF error code to OpenAI's message and code, so no field needs a hand-written check."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
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


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer too large for a float
        return False


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
        if isinstance(data, bool) or not isinstance(data, int | float) or not _finite(data):
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
    """A JSON string, kept as sent: no number turned into one, no whitespace trimmed."""

    expected = "a string"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# The fields of each SharedFields serializer, by (class, fields_key).
_shared_fields: dict[tuple[type, Hashable], Any] = {}


class SharedFields(serializers.Serializer):
    """A serializer whose fields are built once and serve every instance with the same
    fields_key. DRF builds each instance's fields anew (a deep copy of every declared field, then
    bound to it): for a job create's ~30 fields about 0.4 ms of the web's CPU per request
    (docs/PERFORMANCE.md, "Issue 29 (4)"). Sharing is safe because a field keeps nothing of what
    it validates, and of its root (here the instance that built them) reads only `partial`,
    which `check` never sets."""

    # The context keys get_fields reads: the only ones the prototype gets, so it keeps nothing
    # else a caller put there (a view's request, for the process's life).
    fields_context: tuple[str, ...] = ()

    def fields_key(self) -> Hashable:
        """What the fields depend on besides the class (what get_fields reads)."""
        return ()

    @property
    def fields(self) -> Any:
        key = (type(self), self.fields_key())
        fields = _shared_fields.get(key)
        if fields is None:
            # Bound to an instance of their own, which holds no request or its data. Its context
            # is never empty: drf-spectacular fills a nested serializer's empty context (its
            # root's, here the prototype's) in place with its request while it builds the API
            # documents.
            context = {name: self._context[name] for name in self.fields_context if name in self._context}
            prototype = type(self)(context={"shared_fields_prototype": True, **context})
            fields = _shared_fields[key] = serializers.Serializer.fields.func(prototype)  # type: ignore[attr-defined]
        return fields


def _number_kind(field: serializers.Field) -> str:
    return "integer" if isinstance(field, serializers.IntegerField) else "decimal"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(field: serializers.ChoiceField) -> str:
    allowed = [str(c) for c in field.choices]
    if len(allowed) < 3:
        return " and ".join(f"'{a}'" for a in allowed)
    return ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"


# The field is the one that raised the code, so it has what the wording reads (min_value, choices...).
Wording = Callable[[str, Any, Any], tuple[str, str]]

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
        (
            f"Invalid '{p}': array too long. Expected an array with maximum length {f.max_length}, but "
            f"got an array with length {len(v)} instead.",
            "array_above_max_length",
        )
        if isinstance(f, serializers.ListField)
        else (
            f"Invalid '{p}': string too long. Expected a string with maximum length {f.max_length}, but "
            f"got a string with length {len(v)} instead.",
            "string_above_max_length",
        )
    ),
    "min_length": lambda p, f, v: (
        f"Invalid '{p}': empty array. Expected an array with minimum length {f.min_length}, but got an "
        "empty array instead.",
        "empty_array",
    ),
    "not_a_list": lambda p, f, v: (
        f"Invalid type for '{p}': expected {getattr(f, 'expected', 'an array')}, but got {kind(v)} instead.",
        "invalid_type",
    ),
    "not_a_dict": lambda p, f, v: (
        f"Invalid type for '{p}': expected {getattr(f, 'expected', 'an object')}, but got {kind(v)} instead.",
        "invalid_type",
    ),
    "max_string_length": lambda p, f, v: (f"Invalid '{p}': the number is too long.", "invalid_value"),
}


def _first_error(errors: Any, field: serializers.Field, data: Any, param: str) -> tuple[str, Any, Any, Any]:
    """(param path, the error, its field, its value), descending into nested fields: a dict
    child's error is `name.key`, a list child's `name[i]`."""
    if isinstance(errors, list):
        return param, errors[0], field, data
    key, inner = next(iter(errors.items()))
    if key == "non_field_errors":  # a nested serializer's own error (not an object, say)
        return param, inner[0], field, data
    if isinstance(field, serializers.Serializer):
        child, where = field.fields.get(key), f"{param}.{key}" if param else str(key)
    else:  # DictField or ListField: the same child for every key or index
        child = getattr(field, "child", None)
        where = f"{param}[{key}]" if isinstance(field, serializers.ListField) else f"{param}.{key}"
    value = data.get(key) if isinstance(data, dict) else data[key] if isinstance(data, list) else None
    if child is None:
        return where, inner[0] if isinstance(inner, list) else inner, field, value
    return _first_error(inner, child, value, where)


def check(serializer_class: type[serializers.Serializer], data: Any, **context: Any) -> dict[str, Any]:
    """The serializer's validated data, or a FaceError worded as OpenAI words it. `custom` in the
    context maps (param, DRF code) to (message, code) for a serializer's own fields."""
    serializer = serializer_class(data=data, context=context)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    if "non_field_errors" in errors:
        detail = errors["non_field_errors"][0]
        raise FaceError(str(detail), code=getattr(detail, "code", None))
    param, detail, field, value = _first_error(errors, serializer, data, "")
    code = getattr(detail, "code", "invalid")
    custom = context.get("custom", {}).get((param, code))
    if custom is not None:
        raise FaceError(custom[0], param=param, code=custom[1])
    wording = WORDING.get(code)
    if wording is None or field is None:
        raise FaceError(str(detail), param=param, code=code)
    message, openai_code = wording(param, field, value)
    raise FaceError(message, param=param, code=openai_code)
