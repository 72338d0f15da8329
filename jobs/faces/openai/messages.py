"""OpenAI chat messages, each checked by the rules of its role as OpenAI's schema has them, and
the face's wording of a missing, mistyped or unknown value (the Responses face uses it too)."""

from __future__ import annotations

from typing import Any

from jobs.faces.common.errors import FaceError
from jobs.faces.common.serializers import kind

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# Content part types each role may send, as OpenAI's schema allows them.
PART_TYPES = {
    "user": ("text", "image_url", "input_audio", "file"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "assistant": ("text", "refusal"),
}


def missing(param: str) -> FaceError:
    return FaceError(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def wrong_type(param: str, expected: str, value: Any) -> FaceError:
    return FaceError(
        f"Invalid type for '{param}': expected {expected}, but got {kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def not_one_of(param: str, value: Any, allowed: tuple[str, ...]) -> FaceError:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
    return FaceError(
        f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value"
    )


def _content(param: str, role: str, content: Any) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise wrong_type(param, "one of a string or array of objects", content)
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise wrong_type(where, "an object", part)
        if "type" not in part:
            raise missing(f"{where}.type")
        if part["type"] not in PART_TYPES[role]:
            raise not_one_of(f"{where}.type", part["type"], PART_TYPES[role])
        if part["type"] in ("text", "refusal") and not isinstance(part.get(part["type"]), str):
            raise wrong_type(f"{where}.{part['type']}", "a string", part.get(part["type"]))


def _tool_calls(param: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise wrong_type(param, "an array", calls)
    for k, call in enumerate(calls):
        where = f"{param}[{k}]"
        if not isinstance(call, dict):
            raise wrong_type(where, "an object", call)
        for name in ("id", "function"):
            if name not in call:
                raise missing(f"{where}.{name}")
        function = call["function"]
        if not isinstance(function, dict):
            raise wrong_type(f"{where}.function", "an object", function)
        for name in ("name", "arguments"):
            if not isinstance(function.get(name), str):
                raise missing(f"{where}.function.{name}")


def check_messages(messages: list[Any]) -> None:
    """Each message by the rules of its role, as OpenAI's schema has them (MessagesField calls
    this once the serializer has seen a non-empty array)."""
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise wrong_type(where, "an object", message)
        role = message.get("role")
        if role is None:
            raise missing(f"{where}.role")
        if role not in ROLES:
            raise not_one_of(f"{where}.role", role, ROLES)
        if role == "function":
            raise FaceError(
                "The 'function' role is deprecated and not supported; use 'tool' messages.",
                param=f"{where}.role",
                code="unsupported_value",
            )
        content = message.get("content")
        if role == "assistant":
            if message.get("tool_calls") is not None:
                _tool_calls(f"{where}.tool_calls", message["tool_calls"])
            if content is None and not message.get("tool_calls") and message.get("refusal") is None:
                raise missing(f"{where}.content")
        elif "content" not in message:
            raise missing(f"{where}.content")
        if content is not None or role != "assistant":
            _content(f"{where}.content", role, content)
        if role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise missing(f"{where}.tool_call_id")
            before = next((m for m in reversed(messages[:i]) if m.get("role") != "tool"), None)
            if not (before and before.get("role") == "assistant" and before.get("tool_calls")):
                raise FaceError(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceding "
                    "message with 'tool_calls'.",
                    param=f"{where}.role",
                    code="invalid_value",
                )
