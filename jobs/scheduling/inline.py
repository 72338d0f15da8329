"""A slot of a limited engine for work answered inside the request (embeddings), not run as a
job: it waits in the engine's queue like a job of its class and owner, woken when admitted,
runs in the request, and gives the slot back when done. So a burst of embeddings takes turns
with the engine's generations instead of overrunning its upstream."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from django.conf import settings

from engine.types import EngineError
from jobs import wakeup
from jobs.chunklog import wake_channel
from jobs.models import Engine
from jobs.placement import INTERACTIVE
from jobs.scheduling import admission


class Expired(EngineError):
    code = "expired"


@contextlib.asynccontextmanager
async def slot(
    engine: Engine,
    *,
    owner_id: int,
    tokens: int,
    weight: int = 1,
    priority: str = INTERACTIVE,
    timeout: float | None = None,
) -> AsyncIterator[None]:
    """Inside: the request holds one of the engine's slots, taken at `priority` (a request
    someone waits on is interactive; a Batch API line, batch). Raises Expired when none came
    within `timeout` (SPOOL_QUEUE_TIMEOUT_SECONDS by default). An engine without limits has no
    queue: nothing to wait for."""
    if not engine.is_limited:
        yield
        return
    ticket_id = f"{admission.INLINE_PREFIX}{uuid.uuid4()}"
    timeout = timeout or settings.SPOOL.scheduling.queue_timeout_seconds or 3600.0
    ticket = admission.Ticket(ticket_id, priority, str(owner_id), weight, tokens, time.time() + timeout)
    try:
        await _admitted(engine, ticket, timeout)
        yield
    finally:
        await asyncio.to_thread(admission.release, engine, ticket_id, None)


async def _admitted(engine: Engine, ticket: admission.Ticket, timeout: float) -> None:
    # Subscribed before it is submitted: an admission right away is heard.
    async with wakeup.hub().watch(wake_channel(ticket.job_id)) as admitted:
        await asyncio.to_thread(admission.submit, engine, ticket)
        try:
            async with asyncio.timeout(timeout):
                while (await asyncio.to_thread(admission.status, engine, ticket.job_id)).state != "admitted":
                    admitted.clear()
                    # A wake-up missed while the connection was away costs one long-poll's wait.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(admitted.wait(), settings.SPOOL.web.long_poll_seconds)
        except TimeoutError:
            raise Expired(f"Waited {timeout:g} s for a free slot of engine '{engine.name}'.") from None
