"""Strict JSON for request bodies: every way a body can fail to parse is a ValueError."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is too large")
    return value


# NaN and Infinity are Python extensions, not JSON; 1e999 would become inf, which neither JSON
# nor Postgres can hold.
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)


def loads(raw: bytes | str) -> Any:
    """The JSON value of a request body. Raises ValueError (UnicodeDecodeError included) for
    text that is not Unicode, not JSON, or nested too deep for the decoder."""
    try:
        # As json.loads does, but without "surrogatepass": encoded surrogates are not UTF-8.
        text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deep") from None
