"""Validates a POST /v1/chat/completions body with OpenAI's rules and wording: the face's own
fields through its serializer (ChatFace), the generation parameters through the shared one,
and the rules no field type says (each message by its role, tools and tool_choice together)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.serializers import Serializer

from engine.types import GenerationRequest
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.params import build_request
from jobs.faces.common.serializers import check, kind
from jobs.faces.openai.serializers import ChatFace

# Parameters jobs.faces.common.params validates the same way for every face.
ENGINE_PARAMS = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens",
        "presence_penalty", "frequency_penalty", "seed", "logit_bias", "logprobs", "top_logprobs",
        "tools", "tool_choice", "parallel_tool_calls", "response_format", "stream", "store",
        "metadata", "user", "safety_identifier",
    }
)  # fmt: skip
# Parameters only this face knows; taken out before the shared validation.
FACE_PARAMS = frozenset({"model", "messages", "stream_options", "service_tier", "modalities", "audio"})

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# Content part types each role may send, as OpenAI's schema allows them.
PART_TYPES = {
    "user": ("text", "image_url", "input_audio", "file"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "assistant": ("text", "refusal"),
}
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
TOOL_CHOICES = ("none", "auto", "required")


@dataclass(frozen=True, slots=True)
class ChatCreate:
    model: str
    request: GenerationRequest
    stream: bool
    include_usage: bool
    options: dict[str, Any]  # kept on the job: stream, store, metadata, service_tier, include_usage


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


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise wrong_type("tools", "an array", tools)
        for k, tool in enumerate(tools):
            where = f"tools[{k}]"
            if not isinstance(tool, dict):
                raise wrong_type(where, "an object", tool)
            if tool.get("type") != "function":
                raise not_one_of(f"{where}.type", tool.get("type"), ("function",))
            function = tool.get("function")
            if not isinstance(function, dict):
                raise missing(f"{where}.function")
            if not isinstance(function.get("name"), str) or not function["name"]:
                raise missing(f"{where}.function.name")
    for name in ("tool_choice", "parallel_tool_calls"):
        if body.get(name) is not None and not tools:
            raise FaceError(
                f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.",
                param=name,
                code="invalid_value",
            )
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in TOOL_CHOICES:
        raise not_one_of("tool_choice", choice, TOOL_CHOICES)
    if isinstance(choice, dict):
        if choice.get("type") != "function":
            raise not_one_of("tool_choice.type", choice.get("type"), ("function",))
        function = choice.get("function")
        chosen = function.get("name") if isinstance(function, dict) else None
        if chosen is None:
            raise missing("tool_choice.function.name")
        if not isinstance(chosen, str):
            raise wrong_type("tool_choice.function.name", "a string", chosen)
        if chosen not in {t["function"]["name"] for t in tools or []}:
            raise FaceError(
                f"Invalid value for 'tool_choice': no function named '{chosen}' was specified in the "
                "'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )
    elif choice is not None and not isinstance(choice, str):
        raise wrong_type("tool_choice", "one of a string or object", choice)


def _response_format(body: dict[str, Any]) -> None:
    value = body.get("response_format")
    if isinstance(value, dict) and value.get("type") not in RESPONSE_FORMATS:
        raise not_one_of("response_format.type", value.get("type"), RESPONSE_FORMATS)


def stream_options(options: dict[str, Any] | None, stream: bool) -> bool:
    """include_usage, once the serializer has checked stream_options' shape."""
    if options is None:
        return False
    if not stream:
        raise FaceError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    return bool(options.get("include_usage"))


def _no_audio(body: dict[str, Any], modalities: list[str] | None) -> None:
    if modalities and "audio" in modalities:
        raise FaceError(
            'Audio output is not supported: Spool\'s engines write text only; use modalities ["text"].',
            param="modalities",
            code="unsupported_value",
        )
    if body.get("audio") is not None:
        raise FaceError(
            "The 'audio' parameter is not supported: Spool's engines write text only.",
            param="audio",
            code="unsupported_parameter",
        )


def face_fields(
    body: Any, engine_params: frozenset[str], face_params: frozenset[str], shape: type[Serializer]
) -> dict[str, Any]:
    """A body's own fields (face_params) checked by its serializer, once every field is known."""
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_type")
    refuse_unknown(body, engine_params | face_params)
    return check(shape, {name: body[name] for name in face_params if name in body})


def parse_create(body: Any) -> ChatCreate:
    face = face_fields(body, ENGINE_PARAMS, FACE_PARAMS, ChatFace)
    model, messages, tier = face["model"], face["messages"], face.get("service_tier")
    _tools(body)
    _response_format(body)
    _no_audio(body, face.get("modalities"))
    params = {k: v for k, v in body.items() if k in ENGINE_PARAMS and v is not None}
    request, options = build_request(messages, params, known=ENGINE_PARAMS)
    if options.metadata is not None and not options.store:
        # OpenAI's answer, found by running the official SDK against both: metadata lives only on
        # a stored completion, so without store it would be silently dropped.
        raise FaceError(
            "The 'metadata' parameter is only allowed when 'store' is enabled.",
            param="metadata",
            code="invalid_value",
        )
    include_usage = stream_options(face.get("stream_options"), options.stream)
    stored = {**options.to_dict(), "include_usage": include_usage}
    if tier is not None:
        stored["service_tier"] = tier
    return ChatCreate(model, request, options.stream, include_usage, stored)
