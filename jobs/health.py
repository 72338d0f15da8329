"""Liveness and readiness probes of the web process: /healthz and /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import psycopg
import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse
from kombu import Connection
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from jobs import redis_topology

# Each probe opens a connection of its own rather than borrowing the app's: a probe that times
# out must not leave a half-read reply on a pooled connection a request would use next, and a
# pool exhausted by slow requests must not make a reachable Postgres look down.


async def _postgres(timeout: float) -> None:
    db = settings.DATABASES["default"]
    conn = await psycopg.AsyncConnection.connect(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        connect_timeout=max(1, round(timeout)),  # libpq counts whole seconds
        autocommit=True,
    )
    try:
        await conn.execute("SELECT 1")
    finally:
        await conn.close()


async def _redis_ping(url: str, timeout: float) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _redis(timeout: float) -> None:
    problem = await redis_topology.check(timeout)  # which also finds the URL's node answering
    if problem:
        raise ImproperlyConfigured(problem)
    if not settings.SPOOL.redis.cluster:
        return
    # Discovers the cluster from the URL's node, then PINGs every node: a shard that is down
    # holds the logs of a share of the jobs.
    client = AsyncRedisCluster.from_url(
        settings.SPOOL.redis.url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        await client.ping(target_nodes=AsyncRedisCluster.ALL_NODES)
    finally:
        await client.aclose()


def _broker_connect(url: str, timeout: float) -> None:
    with Connection(url, connect_timeout=timeout) as conn:
        conn.connect()


async def _broker(timeout: float) -> None:
    url = settings.SPOOL.broker.url
    if url.startswith(("redis://", "rediss://", "unix://")):
        await _redis_ping(url, timeout)
    else:  # RabbitMQ and the rest: kombu's client is blocking, so it gets a thread
        await asyncio.to_thread(_broker_connect, url, timeout)


CHECKS: dict[str, Callable[[float], Awaitable[None]]] = {
    "postgres": _postgres,
    "redis": _redis,
    "broker": _broker,
}


async def _run(name: str, timeout: float) -> str:
    try:
        await asyncio.wait_for(CHECKS[name](timeout), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # whatever the client raises, the probe reports it, never a 500
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "ok"


async def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is looked at, so a restart is never blamed on Redis."""
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when Postgres, Redis and the broker each answer within the timeout; else 503 naming
    the ones that did not, so a load balancer stops sending requests this process cannot serve."""
    timeout = settings.SPOOL.site.ready_timeout_seconds
    names = list(CHECKS)
    results = dict(zip(names, await asyncio.gather(*(_run(n, timeout) for n in names)), strict=True))
    failed = [name for name, result in results.items() if result != "ok"]
    body = {"status": "unavailable" if failed else "ok", "failed": failed, "checks": results}
    return JsonResponse(body, status=503 if failed else 200)
