"""Runs the supported pixels: META, LLM, GetModelAPI, GetRoomMessages, Embeddings."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from jobs import services
from jobs.access import check_engine
from jobs.dbwork import db_work
from jobs.faces.common.embeddings import checked_request, embed, vectors_out
from jobs.faces.common.errors import FaceError
from jobs.faces.common.params import accepted, build_request
from jobs.faces.common.placement import body_priority, body_seconds
from jobs.jobview import JobView
from jobs.models import Engine, Room, RoomMessage
from jobs.placement import InvalidPlacement, Placement
from jobs.protocols.pixel import (
    LLMCall,
    Pixel,
    PixelError,
    embeddings_call,
    llm_call,
    model_api_call,
    room_messages_call,
)
from jobs.selectors import engine_find, engine_lookup, parse_uuid

# The paramValues that place the job in its engine's queue rather than reach the engine.
PLACEMENT_PARAMS = ("priority", "queue_timeout")
# SEMOSS's own name for the output cap beside OpenAI's two.
MAX_TOKENS_ALIASES = ("max_completion_tokens", "max_new_tokens", "max_tokens")
# The paramValues that reach the engine: every generation parameter but `safety_identifier`.
ENGINE_PARAMS = accepted(MAX_TOKENS_ALIASES) - {"safety_identifier"}

# The paramValues of Embeddings: the vectors always come back as numbers (SEMOSS's shape).
EMBEDDING_PARAMS = ("dimensions", "user")

MODEL_API: dict[str, str] = {Engine.Kind.OFFLINE: "SPOOL_OFFLINE", Engine.Kind.OPENAI: "OPEN_AI"}


class ReactorError(Exception):
    """Becomes an ERROR pixelReturn with this message."""


def _history(room: Room) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    for message in room.messages.all():
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in message.tool_calls
            ]
        history.append(entry)
    return history


def _messages(call: LLMCall, full_prompt: Any, room: Room) -> tuple[list[dict[str, Any]], str]:
    """(messages for the engine, the user's text to record in the room)."""
    if full_prompt is not None:
        if call.image or call.url:
            raise ReactorError(
                "image= and url= go with a command; with full_prompt, put image_url content parts "
                "in its messages instead."
            )
        if isinstance(full_prompt, str):
            return [{"role": "user", "content": full_prompt}], full_prompt
        if not isinstance(full_prompt, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in full_prompt
        ):
            raise ReactorError("full_prompt must be a string or a list of messages with a 'role'.")
        users = [m for m in full_prompt if m["role"] == "user" and isinstance(m.get("content"), str)]
        return full_prompt, users[-1]["content"] if users else ""
    if call.command is None:
        raise ReactorError("LLM needs a command, or full_prompt in paramValues.")
    messages: list[dict[str, Any]] = []
    if call.context:
        messages.append({"role": "system", "content": call.context})
    if call.use_history and call.room_id is not None:  # a room made for this call has none yet
        messages.extend(_history(room))
    messages.append({"role": "user", "content": _with_images(call.command, call)})
    return messages, call.command


# The image types whose first bytes say what they are, for base64 data sent without a data URL.
_IMAGE_MAGIC = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"RIFF": "webp"}


def _image_url(data: str) -> str:
    """LLM's image= items are base64 image data (or already data URLs): as a data URL."""
    if data.startswith("data:"):
        return data
    head = base64.b64decode(data[:16] + "=" * (-len(data[:16]) % 4), validate=False)
    kind = next((name for magic, name in _IMAGE_MAGIC.items() if head.startswith(magic)), "png")
    return f"data:image/{kind};base64,{data}"


def _with_images(text: str, call: LLMCall) -> str | list[dict[str, Any]]:
    """The user's text, with LLM's image= (base64 data) and url= (image addresses) as OpenAI's
    image_url parts after it: an engine that reads images gets them, one that cannot refuses."""
    if not call.image and not call.url:
        return text
    urls = [*(_image_url(data) for data in call.image), *call.url]
    return [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": u}} for u in urls)]


def _part_name(call: LLMCall, messages: list[dict[str, Any]], param: str) -> str:
    """The LLM argument behind a refused content part ("messages[2].content[1]" -> "image[0]")."""
    last = len(messages) - 1
    prefix = f"messages[{last}].content["
    if not (call.image or call.url) or not param.startswith(prefix) or not param.endswith("]"):
        return param
    index = int(param[len(prefix) : -1]) - 1  # part 0 is the text
    return f"image[{index}]" if index < len(call.image) else f"url[{index - len(call.image)}]"


def _placed(placement: Placement, params: dict[str, Any]) -> Placement:
    """The request's placement with what paramValues ask (taken out of `params`)."""
    priority, queue_timeout = (params.pop(name, None) for name in PLACEMENT_PARAMS)
    try:
        return replace(
            placement,
            priority=body_priority(priority),
            queue_timeout=body_seconds(queue_timeout, "queue_timeout") or placement.queue_timeout,
        )
    except InvalidPlacement as exc:
        raise ReactorError(str(exc)) from None


@db_work
@transaction.atomic
def _create_llm_job(user: User, engines: frozenset[str], call: LLMCall, placement: Placement) -> JobView:
    """Find the engine and create the room, the job and the user's message: one thread hop and
    one commit for all (a call refused after its room was made leaves no empty room)."""
    engine = engine_lookup(call.engine)
    if engine is None:
        raise ReactorError(f"Unknown engine {call.engine!r}.")
    check_engine(engines, engine)  # before the room is made
    params = dict(call.param_values)
    full_prompt = params.pop("full_prompt", None)
    # A retry of the call is the same call although the room's history may have grown since.
    placement = replace(
        _placed(placement, params), basis=[call.engine, call.room_id, call.command, call.param_values]
    )
    try:
        room = services.room_resolve(owner=user, room_id=call.room_id)
    except (Room.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID
        raise ReactorError(f"Unknown room {call.room_id!r}.") from None
    messages, user_text = _messages(call, full_prompt, room)
    try:
        request, options = build_request(
            messages,
            params,
            known=ENGINE_PARAMS,
            max_tokens_aliases=MAX_TOKENS_ALIASES,
        )
    except FaceError as exc:
        raise ReactorError(exc.message) from None
    try:
        return services.job_start(
            owner=user,
            engine=engine,
            request=request,
            options=options.to_dict(),
            face="semoss",
            room=room,
            user_message=user_text,
            engines=engines,
            placement=placement,
        )
    except services.JobRefused as refused:
        refused.param = _part_name(call, messages, refused.param)
        raise ReactorError(refused.message) from None


async def start_llm(user: User, engines: frozenset[str], pixel: Pixel, placement: Placement) -> JobView:
    """Raises EngineNotAllowed (a 403 in this face's shape) when the key may not use the engine,
    and IdempotencyConflict (409) for a key used with another request."""
    try:
        call = llm_call(pixel)
    except PixelError as exc:
        raise ReactorError(str(exc)) from None
    return await _create_llm_job(user, engines, call, placement)


async def model_api(engines: frozenset[str], pixel: Pixel) -> str:
    model = model_api_call(pixel).model
    engine = await engine_find(model)
    if engine is None:
        raise ReactorError(f"Unknown engine {model!r}.")
    check_engine(engines, engine)
    return MODEL_API.get(engine.kind, engine.kind.upper())


async def room_messages(user: User, pixel: Pixel) -> list[dict[str, Any]]:
    """The caller's messages in a room, oldest first. A room with none of the caller's messages
    answers an empty list, as SEMOSS does: an unknown id, the "None" the SDK sends when it has no
    insight, another user's room (so nothing says that room exists)."""
    room_id = parse_uuid(room_messages_call(pixel).room_id)
    if room_id is None:
        return []
    return [
        {
            "MESSAGE_ID": str(message.pk),
            "ROOM_ID": str(message.room_id),
            "MESSAGE_TYPE": "INPUT" if message.role == "user" else "RESPONSE",
            "ROLE": message.role,
            "MESSAGE_DATA": message.content,
            "TOOL_CALLS": message.tool_calls,
            "JOB_ID": str(message.job_id) if message.job_id else None,
            "DATE_CREATED": message.created_at.isoformat(),
        }
        async for message in RoomMessage.objects.filter(room_id=room_id, room__owner=user).order_by("id")
    ]


async def embeddings(user: User, engines: frozenset[str], pixel: Pixel) -> dict[str, Any]:
    """SEMOSS's EmbeddingsModelEngineResponse as a map: one vector per value, in order."""
    try:
        call = embeddings_call(pixel)
    except PixelError as exc:
        raise ReactorError(str(exc)) from None
    params = call.param_values
    unknown = sorted(set(params) - set(EMBEDDING_PARAMS))
    if unknown:
        raise ReactorError(
            f"Unknown parameter '{unknown[0]}' in paramValues; Embeddings takes "
            f"{' and '.join(EMBEDDING_PARAMS)}."
        )
    dimensions, end_user = params.get("dimensions"), params.get("user")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise ReactorError("dimensions must be an integer.")
    if end_user is not None and not isinstance(end_user, str):
        raise ReactorError("user must be a string.")
    try:
        wanted = checked_request(list(call.values), params)
        _, result = await embed(
            owner_id=user.pk, engines=engines, ref=call.engine, wanted=wanted, face="semoss", param="engine",
            unknown=lambda: FaceError(f"Unknown engine {call.engine!r}."),
        )  # fmt: skip
    except FaceError as exc:
        raise ReactorError(exc.message) from None
    return {
        "response": vectors_out(result.vectors),
        "numberOfTokensInPrompt": result.input_tokens,
        "numberOfTokensInResponse": 0,
    }
