"""What one thread hop costs on the web's event loop: the one Django's ASGI handler still forces
per request (response.close() through sync_to_async, inside the request's ThreadSensitiveContext,
which starts a fresh executor thread), against a call made on the loop. `python -m bench.hops`."""

from __future__ import annotations

import asyncio
import json
import time

from asgiref.sync import ThreadSensitiveContext, sync_to_async

ROUNDS = 3000


def _noop() -> None:
    return None


async def _per_request_hop() -> None:
    async with ThreadSensitiveContext():
        await sync_to_async(_noop)()


async def _two_hops_in_one_request() -> None:
    async with ThreadSensitiveContext():
        await sync_to_async(_noop)()
        await sync_to_async(_noop)()


async def _inline() -> None:
    async with ThreadSensitiveContext():
        _noop()


async def _measure(step) -> dict[str, float]:
    for _ in range(200):
        await step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(ROUNDS):
        await step()
    return {
        "wall_us": round((time.perf_counter() - wall) / ROUNDS * 1e6, 1),
        "cpu_us": round((time.process_time() - cpu) / ROUNDS * 1e6, 1),
    }


async def main() -> None:
    for name, step in (
        ("no hop (request context only)", _inline),
        ("one hop per request (response.close)", _per_request_hop),
        ("two hops per request", _two_hops_in_one_request),
    ):
        print(json.dumps({"case": name, **await _measure(step)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
