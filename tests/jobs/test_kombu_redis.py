"""jobs/compat/kombu_redis.py on the test Redis: a delivered message reaches the consumer before
kombu records it as unacknowledged (the round trip off a job's start), and is recorded after
(what brings it back when its worker is lost); one the consumer has already rejected is not."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from kombu import Connection, Consumer, Producer, Queue


@pytest.fixture
def channel() -> Iterator[Any]:
    with Connection(settings.SPOOL.broker.url) as conn:
        yield conn.channel()


def _deliver_one(channel: Any, on_message: Callable[[Any], None]) -> Any:
    """Publishes one message to a queue of its own and consumes it; the message."""
    queue = Queue(f"compat-kombu-{uuid.uuid4().hex[:8]}")
    Producer(channel).publish({"job": 1}, routing_key=queue.name, declare=[queue], serializer="json")
    received = []

    def callback(message: Any) -> None:
        received.append(message)
        on_message(message)

    consumer = Consumer(channel, queues=[queue], on_message=callback, accept=["json"])
    consumer.consume()
    channel.connection.client.drain_events(timeout=5)
    consumer.cancel()
    return received[0]


def _recorded(channel: Any, message: Any) -> bool:
    return bool(channel.client.hexists(channel.unacked_key, message.delivery_tag))


def test_a_message_is_handed_over_before_it_is_recorded_as_unacknowledged_and_recorded_after(channel):
    at_call = []
    message = _deliver_one(channel, lambda message: at_call.append(_recorded(channel, message)))
    assert at_call == [False]
    # Recorded once the consumer has it: a worker lost now gets it back after the visibility
    # timeout, and counts it against its prefetch until it is acknowledged.
    assert _recorded(channel, message)
    assert message.delivery_tag in channel.qos._delivered
    message.ack()
    assert not _recorded(channel, message)


def test_a_message_rejected_in_the_consumers_call_is_not_recorded(channel):
    message = _deliver_one(channel, lambda message: message.reject())
    assert not _recorded(channel, message)
    # Nor counted against the prefetch (kombu's count: delivered less acknowledged).
    assert len(channel.qos._delivered) - len(channel.qos._dirty) == 0


def test_a_message_requeued_in_the_consumers_call_comes_back(channel):
    first = _deliver_one(channel, lambda message: message.requeue())
    queue = first.delivery_info["routing_key"]
    assert not _recorded(channel, first)
    assert channel.client.llen(queue) == 1
    channel.client.delete(queue)
