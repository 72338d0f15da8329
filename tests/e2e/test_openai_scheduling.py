"""Priorities, queue deadlines and idempotency on the OpenAI face, with the official openai SDK
against a running Spool and worker: service_tier picks the class and the answer names the tier
that served it; a key's max_priority caps it; Idempotency-Key (the SDK's extra_headers) replays
a completion and refuses another request with it; a completion that waits past its queue
timeout fails with code expired."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.e2e.helpers import busy_engine
from tests.e2e.openai_helpers import OFFLINE, client
from tests.servers import User

pytestmark = pytest.mark.e2e


def ask(text: str | None = None) -> list[dict[str, str]]:
    """A prompt no other test sends, so its jobs can be counted."""
    return [{"role": "user", "content": text or f"Tell me of the sea ({uuid.uuid4().hex})."}]


def jobs_asked(messages: list[dict[str, str]]) -> list:
    from jobs.models import Job

    return list(Job.objects.filter(request__messages__0__content=messages[0]["content"]))


def capped_user(spool, max_priority: str) -> User:
    from jobs import services
    from jobs.models import ApiKey

    owner = services.user_ensure(username=spool.alice.username)
    key, secret = services.key_create(owner=owner, name="capped")
    ApiKey.objects.filter(pk=key.pk).update(max_priority=max_priority)
    return User(spool.alice.username, key.access_key, secret)


def test_a_chat_runs_interactive_unless_service_tier_says_flex(spool, pg):
    sdk = client(spool)
    plain, flex = ask(), ask()
    done = sdk.chat.completions.create(model=OFFLINE, messages=plain, max_tokens=2)
    assert done.service_tier is None  # not asked, not told
    sdk.chat.completions.create(model=OFFLINE, messages=flex, max_tokens=2, service_tier="flex")
    assert jobs_asked(plain)[0].options["priority"] == "interactive"
    assert jobs_asked(flex)[0].options["priority"] == "batch"


def test_a_key_capped_at_batch_is_served_flex_when_it_asks_for_priority(spool, pg):
    sdk = client(spool, capped_user(spool, "batch"))
    messages = ask()
    done = sdk.chat.completions.create(
        model=OFFLINE, messages=messages, max_tokens=2, service_tier="priority"
    )
    assert done.service_tier == "flex"
    options = jobs_asked(messages)[0].options
    assert (options["priority"], options["priority_asked"]) == ("batch", "interactive")
    response = sdk.responses.create(
        model=OFFLINE, input="Speak.", max_output_tokens=2, service_tier="priority"
    )
    assert response.service_tier == "flex"


def test_the_same_idempotency_key_replays_the_completion_streamed_or_not(spool, pg):
    sdk = client(spool)
    messages, key = ask(), {"Idempotency-Key": f"chat-{uuid.uuid4().hex}"}
    args = dict(model=OFFLINE, messages=messages, max_tokens=6, seed=4, extra_headers=key)
    first = sdk.chat.completions.with_raw_response.create(**args)
    again = sdk.chat.completions.with_raw_response.create(**args)
    assert again.parse().id == first.parse().id
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(jobs_asked(messages)) == 1

    streamed_key = {"Idempotency-Key": f"stream-{uuid.uuid4().hex}"}
    streamed = {**args, "messages": ask(), "extra_headers": streamed_key, "stream": True}
    original = list(sdk.chat.completions.create(**streamed))
    # A replay of a stream rejoins it from its first chunk: the same chunks again.
    replayed = list(sdk.chat.completions.create(**streamed))
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in original]


def test_the_same_key_with_another_request_is_a_conflict_the_sdk_does_not_retry(spool, pg):
    sdk = client(spool).with_options(max_retries=2)  # the SDK retries a 409 unless told not to
    key = {"Idempotency-Key": f"conflict-{uuid.uuid4().hex}"}
    sdk.chat.completions.create(model=OFFLINE, messages=ask(), max_tokens=2, extra_headers=key)
    other = ask()
    with pytest.raises(openai.ConflictError) as caught:
        sdk.chat.completions.create(model=OFFLINE, messages=other, max_tokens=2, extra_headers=key)
    assert caught.value.code == "idempotency_key_conflict"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert jobs_asked(other) == []


def test_a_completion_that_waits_past_its_queue_timeout_fails_with_code_expired(spool, pg):
    busy = busy_engine(spool, spool.alice)
    sdk = client(spool)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            sdk.chat.completions.create,
            model=busy.name,
            messages=ask(),
            max_tokens=2,
            extra_headers={"X-Spool-Queue-Timeout": "0.5"},
        )
        busy.release_after_deadline_of(busy.waiting_job())
        with pytest.raises(openai.APIStatusError) as caught:
            answer.result(timeout=60)
    assert (caught.value.status_code, caught.value.code) == (504, "expired")
    assert "queue timeout" in caught.value.message
