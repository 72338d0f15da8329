"""Validates a POST /v1/chat/completions body with OpenAI's rules and wording: the face's own
fields through its serializer (ChatFace), the generation parameters through the shared one,
and the rules no field type says (each message by its role, tools and tool_choice together)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.serializers import Serializer

from engine.types import GenerationRequest
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.params import accepted, build_request
from jobs.faces.common.serializers import check
from jobs.faces.openai.messages import missing, not_one_of, wrong_type
from jobs.faces.openai.serializers import ChatFace
from jobs.placement import SERVICE_TIERS

# Parameters jobs.faces.common.params validates the same way for every face: all of them.
ENGINE_PARAMS = accepted()
# Parameters only this face knows; taken out before the shared validation.
FACE_PARAMS = frozenset({"model", "messages", "stream_options", "service_tier", "modalities", "audio"})

RESPONSE_FORMATS = ("text", "json_object", "json_schema")
TOOL_CHOICES = ("none", "auto", "required")


@dataclass(frozen=True, slots=True)
class ChatCreate:
    model: str
    request: GenerationRequest
    stream: bool
    include_usage: bool
    options: dict[str, Any]  # kept on the job: stream, store, metadata, service_tier, include_usage
    priority: str | None  # the class service_tier asks for; None: the face's default


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


def tier_class(tier: str | None) -> str | None:
    """The priority class an OpenAI service_tier (already checked) asks for."""
    return SERVICE_TIERS.get(tier) if tier else None


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
    return ChatCreate(model, request, options.stream, include_usage, stored, tier_class(tier))
