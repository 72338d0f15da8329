"""The public, unmodified ai-server-sdk against a running Spool."""

from __future__ import annotations

import time

import pytest
from ai_server import ModelEngine, ServerClient

from tests.e2e.helpers import NO_EOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def model(spool) -> ModelEngine:
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    return ModelEngine(engine_id=spool.engine_id)


@pytest.mark.cluster
def test_ask_returns_the_llm_output_dict(spool, model, pg):
    from jobs.models import Job

    out = model.ask(
        command="write me a paragraph about soccer",
        param_dict={"max_completion_tokens": 30, "temperature": 0.3, **NO_EOT},
    )
    assert out["messageType"] == "CHAT"
    assert isinstance(out["response"], str) and out["response"].strip()
    assert out["numberOfTokensInResponse"] == 30 and out["numberOfTokensInPrompt"] > 0
    job = Job.objects.get(pk=out["messageId"])
    assert str(job.room_id) == out["roomId"]
    assert job.result["choices"][0]["content"] == out["response"]


@pytest.mark.cluster
def test_stream_ask_yields_text_while_it_is_generated(spool, model, pg):
    from jobs.models import RoomMessage

    room = "6f1f8a52-8f0c-4a55-9d4e-0d6f7c1a2b3c"
    pieces, arrivals = [], []
    for piece in model.stream_ask(
        command="tell me about windmills",
        room_id=room,
        param_dict={"max_completion_tokens": 60, "seed": 9, **NO_EOT},
    ):
        pieces.append(piece)
        arrivals.append(time.monotonic())
    assert len(pieces) >= 3
    assert arrivals[-1] - arrivals[0] > 0.1, "pieces should arrive over time, not all at the end"
    stored = RoomMessage.objects.filter(room_id=room, role="assistant").last()
    assert "".join(pieces) == stored.content


def test_a_room_with_history_carries_the_conversation(spool, model, pg):
    from jobs.models import Job

    first = model.ask(command="My name is Ishmael.", param_dict={"max_completion_tokens": 5})
    room = first["roomId"]
    second = model.ask(
        command="What is my name?", room_id=room, use_history=True, param_dict={"max_completion_tokens": 5}
    )
    assert second["roomId"] == room
    sent = Job.objects.get(pk=second["messageId"]).request["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ishmael." and sent[1]["content"] == first["response"]

    history = model.get_conversation_history(insight_id=room)
    assert [m["MESSAGE_TYPE"] for m in history] == ["INPUT", "RESPONSE", "INPUT", "RESPONSE"]
    assert history[3]["MESSAGE_DATA"] == second["response"]

    third = model.ask(
        command="Fresh start.", room_id=room, use_history=False, param_dict={"max_completion_tokens": 3}
    )
    assert len(Job.objects.get(pk=third["messageId"]).request["messages"]) == 1


def test_get_model_type_answers_per_engine_kind(model):
    assert model.get_model_type() == "SPOOL_OFFLINE"


def test_sdk_errors_surface_as_exceptions(spool, model):
    # The SDK's run_pixel raises a plain Exception carrying the ERROR pixelReturn's output.
    with pytest.raises(Exception, match="Expected a value <= 2"):
        model.ask(command="hi", param_dict={"temperature": 5})
    bad = ModelEngine(engine_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(Exception, match="Unknown engine"):
        bad.ask(command="hi")


def test_wrong_keys_cannot_log_in(spool):
    with pytest.raises(Exception, match="could not successfully login"):
        ServerClient(base=spool.semoss, access_key="spool-ak-x", secret_key="spool-sk-y")


@pytest.mark.parametrize("room", ["None", "not-a-room", "00000000-0000-0000-0000-000000000000"])
def test_history_of_a_room_without_messages_is_empty(model, room):
    # SEMOSS answers an empty list; the SDK's LangChain model asks for roomId="None" before every call.
    assert model.get_conversation_history(insight_id=room) == []


def test_the_langchain_chat_model_invokes_and_streams_without_an_insight(spool, model, pg):
    from langchain_core.messages import AIMessageChunk, HumanMessage

    from jobs.models import Job

    chat = model.to_langchain_chat_model()
    answer = chat.invoke([HumanMessage(content="Tell me of the king.")], max_completion_tokens=8, **NO_EOT)
    assert isinstance(answer.content, str) and answer.content.strip()
    job = Job.objects.filter(owner__username=spool.alice.username).latest("created_at")
    assert job.request["messages"] == [{"role": "user", "content": "Tell me of the king."}]
    assert job.result["choices"][0]["content"] == answer.content

    pieces = list(chat.stream("Speak of the sea.", max_completion_tokens=12, seed=3, **NO_EOT))
    assert len(pieces) >= 2 and all(isinstance(p, AIMessageChunk) for p in pieces)
    streamed = Job.objects.filter(owner__username=spool.alice.username).latest("created_at")
    assert "".join(p.content for p in pieces) == streamed.result["choices"][0]["content"]


def test_the_langchain_chat_model_reads_the_history_of_its_insight(spool, pg):
    from langchain_core.messages import HumanMessage

    from jobs.models import Job

    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    first = ModelEngine(engine_id=spool.engine_id).ask(
        command="My name is Ishmael.", param_dict={"max_tokens": 4}
    )
    chat = ModelEngine(engine_id=spool.engine_id, insight_id=first["roomId"]).to_langchain_chat_model()
    chat.invoke([HumanMessage(content="What is my name?")], max_completion_tokens=4)
    sent = Job.objects.filter(owner__username=spool.alice.username).latest("created_at").request["messages"]
    # The offline engine's model type gets the SDK's plain-text prompt: history, then the question.
    assert sent[0]["content"] == f"My name is Ishmael.\n{first['response']}\nWhat is my name?"
