"""Content an engine cannot read is refused on every face, naming the part; an upstream engine
passes it on to its server unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from ai_server import ModelEngine, ServerClient
from spool_client import Spool, SpoolError

import fakeupstream
from tests.e2e.openai_helpers import OFFLINE, client

pytestmark = pytest.mark.e2e

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
PARTS = [pytest.param(IMAGE, id="image"), pytest.param(AUDIO, id="audio")]


def _messages(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Describe what you are given."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]},
    ]


@pytest.mark.parametrize("part", PARTS)
def test_the_openai_face_refuses_it_with_a_400_naming_the_part(spool, part):
    with pytest.raises(openai.BadRequestError) as caught:
        client(spool).chat.completions.create(model=OFFLINE, messages=_messages(part), max_tokens=3)
    error = caught.value
    assert (error.status_code, error.param, error.code) == (
        400,
        "messages[1].content[1]",
        "unsupported_parameter",
    )
    assert f"'{part['type']}' content part" in error.body["message"]


@pytest.mark.parametrize("part", PARTS)
def test_the_semoss_face_refuses_it_with_an_error_naming_the_part(spool, part):
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    model = ModelEngine(engine_id=spool.engine_id)
    # The SDK raises the ERROR pixelReturn's output.
    with pytest.raises(Exception, match=r"'messages\[1\]\.content\[1\]'") as caught:
        model.ask(param_dict={"full_prompt": _messages(part), "max_tokens": 3})
    assert f"'{part['type']}' content part" in str(caught.value)


@pytest.mark.parametrize("part", PARTS)
def test_the_native_face_refuses_it_with_a_400_naming_the_part(spool, part):
    native = Spool(spool.base_url, spool.alice.secret_key)
    with pytest.raises(SpoolError) as caught:
        native.stream(OFFLINE, messages=_messages(part), parameters={"max_tokens": 3})
    error = caught.value
    assert (error.status_code, error.param, error.code) == (
        400,
        "messages[1].content[1]",
        "unsupported_parameter",
    )


def _ask_openai(spool, name: str, messages: list[dict[str, Any]]) -> None:
    done = client(spool).chat.completions.create(model=name, messages=messages, max_tokens=3)
    assert done.choices[0].message.content


def _ask_semoss(spool, name: str, messages: list[dict[str, Any]]) -> None:
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    assert ModelEngine(engine_id=name).ask(param_dict={"full_prompt": messages, "max_tokens": 3})["response"]


def _ask_native(spool, name: str, messages: list[dict[str, Any]]) -> None:
    assert Spool(spool.base_url, spool.alice.secret_key).stream(name, messages=messages).text()


FACES = [pytest.param(_ask_openai, id="openai"), pytest.param(_ask_semoss, id="semoss"),
         pytest.param(_ask_native, id="native")]  # fmt: skip


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("ask", FACES)
def test_an_upstream_engine_passes_the_part_on_unchanged(spool, upstream, pg, ask, part):
    from tests.e2e.openai_helpers import upstream_engine

    key = uuid.uuid4().hex
    name = upstream_engine(f"parts-{key[:8]}", upstream, f"echo?key={key}")
    messages = _messages(part)
    ask(spool, name, messages)
    (request,) = fakeupstream.recorded(upstream, key)
    assert request["body"]["messages"] == messages


PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JPEG_BASE64 = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="


def _semoss_model(spool, engine_id: str) -> ModelEngine:
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    return ModelEngine(engine_id=engine_id)


def test_the_sdks_images_and_image_urls_reach_an_upstream_engine_as_image_parts(spool, upstream, pg):
    from tests.e2e.openai_helpers import upstream_engine

    key = uuid.uuid4().hex
    name = upstream_engine(f"see-{key[:8]}", upstream, f"echo?key={key}")
    answer = _semoss_model(spool, name).ask(
        "What is in these?",
        image=[PNG_BASE64, JPEG_BASE64],
        url=["https://example.com/cat.png"],
        param_dict={"max_tokens": 3},
    )
    assert answer["response"]
    (request,) = fakeupstream.recorded(upstream, key)
    assert request["body"]["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG_BASE64}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }


@pytest.mark.parametrize(
    ("images", "named"),
    [
        pytest.param({"image": [PNG_BASE64]}, "image[0]", id="image"),
        pytest.param({"image": [PNG_BASE64], "url": ["https://example.com/a.png"]}, "image[0]", id="both"),
        pytest.param({"url": ["https://example.com/a.png"]}, "url[0]", id="url"),
    ],
)
def test_the_offline_engine_refuses_the_sdks_images_naming_the_argument(spool, pg, images, named):
    from jobs.models import Room

    rooms = Room.objects.filter(owner__username=spool.alice.username).count()
    with pytest.raises(Exception, match="cannot honour") as caught:
        _semoss_model(spool, spool.engine_id).ask("What is this?", **images)
    assert f"'{named}'" in str(caught.value) and "'image_url' content part" in str(caught.value)
    # The room, the job and the message are one transaction: a refused call leaves no room.
    assert Room.objects.filter(owner__username=spool.alice.username).count() == rooms
