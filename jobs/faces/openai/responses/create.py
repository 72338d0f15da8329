"""Validates a POST /v1/responses body with OpenAI's rules and wording, and turns its input
items, instructions, tools and text format into the chat messages and generation parameters
every engine takes (jobs.faces.common.params checks those as for chat completions)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.serializers import StrictBooleanField, StrictCharField, check
from jobs.faces.openai.chat import tier_class
from jobs.faces.openai.messages import missing, not_one_of, wrong_type
from jobs.faces.openai.serializers import service_tier_field

# Passed on to jobs.faces.common.params under the same name (max_output_tokens as the alias).
GENERATION_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "metadata",
        "user",
        "safety_identifier",
        "max_output_tokens",
    }
)
FACE_PARAMS = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "text", "store", "stream", "background",
     "previous_response_id", "service_tier"}
)  # fmt: skip
MAX_TOKENS_ALIASES = ("max_output_tokens",)
# An engine's refusal names its request field; the client named it this way.
PARAM_NAMES = {"max_tokens": "max_output_tokens", "response_format": "text.format"}
ROLES = ("user", "assistant", "system", "developer")
ITEM_TYPES = ("message", "function_call", "function_call_output")
TEXT_PARTS = ("input_text", "output_text")
TOOL_CHOICES = ("none", "auto", "required")
FORMATS = ("text", "json_object", "json_schema")


class ResponsesFace(serializers.Serializer):
    """The fields only the Responses API has, checked before the shared generation ones."""

    model = StrictCharField()
    input = serializers.JSONField()
    instructions = StrictCharField(required=False, allow_null=True, allow_blank=True)
    store = StrictBooleanField(required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True)
    background = StrictBooleanField(required=False, allow_null=True)
    previous_response_id = StrictCharField(required=False, allow_null=True)
    service_tier = service_tier_field("interactive; default in the background")


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    model: str
    messages: list[dict[str, Any]]  # this request's input as chat messages (instructions apart)
    params: dict[str, Any]  # for jobs.faces.common.params.build_request
    options: dict[str, Any]  # kept on the job (jobs.responses.events.head reads them)
    previous_response_id: str | None
    stream: bool
    background: bool
    priority: str | None  # the class service_tier asks for; None: the face's default


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if value is None:
        raise missing(f"{where}.{name}")
    if not isinstance(value, str):
        raise wrong_type(f"{where}.{name}", "a string", value)
    return value


def _text_of(content: Any, where: str) -> str:
    """A message's text: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise wrong_type(where, "one of a string or array of objects", content)
    texts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise wrong_type(at, "an object", part)
        if part.get("type") not in TEXT_PARTS:
            raise FaceError(
                f"Invalid value: '{part.get('type')}'. Spool's engines read text parts only "
                f"({', '.join(TEXT_PARTS)}).",
                param=f"{at}.type",
                code="unsupported_value",
            )
        texts.append(_string(part, "text", at))
    return "".join(texts)


def _item_id(prefix: str, given: Any, id_seed: str | None, index: int) -> str:
    """An input item's id: its own, or a new one. Under an Idempotency-Key (`id_seed`), the same
    one each time the request is sent, so that a send again is the same request."""
    if given:
        return str(given)
    if id_seed is None:
        return f"{prefix}_{uuid.uuid4().hex}"
    return f"{prefix}_{uuid.uuid5(uuid.NAMESPACE_URL, f'{id_seed}:{index}').hex}"


def input_items(value: Any, id_seed: str | None = None) -> list[dict[str, Any]]:
    """The input as OpenAI's input items, each with an id (what input_items lists)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise wrong_type("input", "one of a string or array of objects", value)
    if not value:
        raise FaceError(
            "Invalid 'input': empty array. Expected an array with minimum length 1.",
            param="input",
            code="empty_array",
        )
    items = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise wrong_type(where, "an object", item)
        item_type = item.get("type", "message")
        if item_type not in ITEM_TYPES:
            raise not_one_of(f"{where}.type", item_type, ITEM_TYPES)
        if item_type == "message":
            role = item.get("role")
            if role is None:
                raise missing(f"{where}.role")
            if role not in ROLES:
                raise not_one_of(f"{where}.role", role, ROLES)
            if "content" not in item:
                raise missing(f"{where}.content")
            text = _text_of(item["content"], f"{where}.content")
            part = "output_text" if role == "assistant" else "input_text"
            items.append(
                {"id": _item_id("msg", item.get("id"), id_seed, i), "type": "message", "role": role,
                 "status": "completed", "content": [{"type": part, "text": text}]}
            )  # fmt: skip
        elif item_type == "function_call":
            items.append(
                {"id": _item_id("fc", item.get("id"), id_seed, i), "type": "function_call",
                 "status": "completed", "call_id": _string(item, "call_id", where),
                 "name": _string(item, "name", where), "arguments": _string(item, "arguments", where)}
            )  # fmt: skip
        else:
            items.append(
                {"id": _item_id("fco", item.get("id"), id_seed, i), "type": "function_call_output",
                 "status": "completed", "call_id": _string(item, "call_id", where),
                 "output": _string(item, "output", where)}
            )  # fmt: skip
    return items


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items (or output items) as chat messages: function calls join the assistant message
    before them, each call's output is a tool message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "message":
            text = "".join(part.get("text", "") for part in item["content"])
            messages.append({"role": item["role"], "content": text})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                last["content"] = last["content"] or None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    """Responses function tools, as chat tools."""
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    out = []
    for k, tool in enumerate(value):
        where = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise wrong_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise FaceError(
                f"Invalid value: '{tool.get('type')}'. Spool's engines call function tools only.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        name = _string(tool, "name", where)
        function = {"name": name}
        for extra in ("description", "parameters", "strict"):
            if tool.get(extra) is not None:
                function[extra] = tool[extra]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    """A Responses tool_choice, as a chat one."""
    if isinstance(value, str):
        if value not in TOOL_CHOICES:
            raise not_one_of("tool_choice", value, TOOL_CHOICES)
        return value
    if not isinstance(value, dict):
        raise wrong_type("tool_choice", "one of a string or object", value)
    if value.get("type") != "function":
        raise not_one_of("tool_choice.type", value.get("type"), ("function",))
    name = _string(value, "name", "tool_choice")
    if name not in {tool["function"]["name"] for tool in tools}:
        raise FaceError(
            f"Invalid value for 'tool_choice': no function named '{name}' was specified in the 'tools' "
            "parameter.",
            param="tool_choice",
            code="invalid_value",
        )
    return {"type": "function", "function": {"name": name}}


def _format(text: Any) -> dict[str, Any] | None:
    """text.format as a chat response_format (None for plain text)."""
    if not isinstance(text, dict):
        raise wrong_type("text", "an object", text)
    refuse_unknown({f"text.{name}" for name in text}, {"text.format"})
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise wrong_type("text.format", "an object", fmt)
    if fmt.get("type") not in FORMATS:
        raise not_one_of("text.format.type", fmt.get("type"), FORMATS)
    if fmt["type"] != "json_schema":
        return {"type": fmt["type"]}
    name = _string(fmt, "name", "text.format")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise wrong_type("text.format.schema", "an object", schema)
    spec = {"name": name, "schema": schema}
    for extra in ("strict", "description"):
        if fmt.get(extra) is not None:
            spec[extra] = fmt[extra]
    return {"type": "json_schema", "json_schema": spec}


def parse_create(body: Any, id_seed: str | None = None) -> ResponseCreate:
    """`id_seed`: the caller and its Idempotency-Key, when it sent one (see _item_id)."""
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_type")
    refuse_unknown(body, GENERATION_PARAMS | FACE_PARAMS)
    face = check(ResponsesFace, {name: body[name] for name in ResponsesFace().fields if name in body})
    store = face.get("store") is not False  # the Responses API stores by default
    background, stream = bool(face.get("background")), bool(face.get("stream"))
    if background and not store:
        raise FaceError(
            "Invalid value for 'background': a background response must be stored; 'store' cannot be false.",
            param="background",
            code="invalid_value",
        )
    items = input_items(face["input"], id_seed)
    params = {name: body[name] for name in GENERATION_PARAMS if body.get(name) is not None}
    options: dict[str, Any] = {"input": items, "background": background}
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    if tools:
        params["tools"] = tools
        options["tools"] = body["tools"]
    if body.get("tool_choice") is not None:
        options["tool_choice"] = body["tool_choice"]
        params["tool_choice"] = _tool_choice(body["tool_choice"], tools)
    if body.get("text") is not None:
        response_format = _format(body["text"])
        if response_format is not None:
            params["response_format"] = response_format
            options["text_format"] = body["text"]["format"]
    params["stream"], params["store"] = stream, store
    if face.get("instructions"):
        options["instructions"] = face["instructions"]
    for name in ("parallel_tool_calls", "user", "safety_identifier", "previous_response_id"):
        if body.get(name) is not None:
            options[name] = body[name]
    tier = face.get("service_tier")
    if tier is not None:
        options["service_tier"] = tier
    return ResponseCreate(
        face["model"],
        chat_messages(items),
        params,
        options,
        face.get("previous_response_id"),
        stream,
        background,
        tier_class(tier),
    )
