"""kombu's Redis transport, with a delivered message recorded as unacknowledged just after the
consumer has been handed it rather than just before (guarded by tests/test_compat.py).

kombu writes that record (ZADD and HSET of the unacked index and hash: one Redis round trip) on
the consumer's thread between reading a message and calling the consumer; a job's task then
waited for it before it was handed to the worker's loop: 0.6 ms p50, 1.7 ms p90 of every job's
queue stage at one stream (docs/PERFORMANCE.md, "Issue 29 (4)"). Written just after, the round
trip overlaps the job's start on the loop instead.

What the record is for is unchanged. It is what brings the message back after the visibility
timeout when the worker is lost mid-job, and it is written before any acknowledgement can remove
it: Celery sends every ack and reject of a message to the consumer's hub (Consumer.call_soon_ack),
which runs them after the callback that is still writing the record has returned. A message the
callback itself has already answered (an unknown task, an invalid one) is recorded and answered
again, as kombu would have done in its order. The window in which a worker that dies loses a
message it has popped and not yet recorded (the sweeper sends a job that stayed queued again)
grows by the consumer's hand-off to the pool, ~0.2 ms; a record that cannot be written (Redis gone
at that moment) leaves a job running without it, whose worker, if lost later, the sweeper finds by
its heartbeat as it finds every lost worker's (docs/RELIABILITY.md). RabbitMQ keeps its
unacknowledged messages itself: nothing changes there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.transport import redis

_stock_basic_consume = redis.Channel.basic_consume


def _recorded_after(channel: redis.Channel, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """kombu's own delivery callback (virtual.Channel.basic_consume), with the record moved after
    the consumer's call."""

    def deliver(raw_message: Any) -> Any:
        message: Any = channel.Message(raw_message, channel=channel)  # _state: kombu's own
        try:
            return callback(message)
        finally:
            tag = message.delivery_tag
            channel.qos.append(message, tag)  # also when the callback raised, as kombu did
            # Answered already in the call (an unknown or invalid task), before the record it
            # removes or requeues: answered again, now in kombu's own order.
            if message._state == "ACK":
                channel.qos.ack(tag)
            elif message._state in ("REJECTED", "REQUEUED"):
                channel.qos.reject(tag, requeue=message._state == "REQUEUED")

    return deliver


def basic_consume(
    self: redis.Channel,
    queue: str,
    no_ack: bool,
    callback: Callable[[Any], Any],
    consumer_tag: str,
    **kwargs: Any,
) -> Any:
    consumed = _stock_basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs)
    if not no_ack:  # without acks nothing is recorded
        transport: Any = self.connection  # the virtual transport keeps each queue's callback
        transport._callbacks[queue] = _recorded_after(self, callback)
    return consumed


def install() -> None:
    """On every Redis channel of the process (Sentinel's are Redis channels too)."""
    redis.Channel.basic_consume = basic_consume  # type: ignore[method-assign]
