"""The worker loop's own Postgres connections: an async psycopg pool per event loop, made with
Django's connection parameters (its adapters too: JSON columns come back as text, timestamps in
Django's time zone, as jobs.worker.statements expects), so a job's claim and end run on the loop
without a thread. Autocommit: each of those is one statement, and needs no BEGIN or COMMIT.
Those two are prepared on each connection (unless SPOOL_DB_PREPARED_STATEMENTS is off): parsed
and planned once, then only bound and run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg_pool import AsyncConnectionPool

# The errors of an unreachable Postgres, as the async driver raises them (a pool that finds
# no connection within its timeout raises PoolTimeout, an OperationalError).
DOWN = (psycopg.OperationalError, psycopg.InterfaceError)

# Each connection carries one short statement at a time (a claim or an end, one round trip of
# well under a millisecond), so a few serve every job of a worker; they are the worker's on top
# of Django's pool (its sync work, its sweeper), and Postgres has room for a bounded number.
MAX_CONNECTIONS = 8
# An idle connection is closed after this long, down to one: a burst's connections go back.
MAX_IDLE_SECONDS = 60.0

_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}


def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None:
        # A wrapper of its own: the one Django keeps for the loop's thread would be closed there,
        # on the loop, by Celery's Django fixup after each task (a sync-only call).
        params = connections.create_connection(DEFAULT_DB_ALIAS).get_connection_params()
        params.pop("cursor_factory", None)  # a sync cursor class; the async default serves
        params["autocommit"] = True
        # Preparing is asked for by the statements worth it, the claim and the end, each run
        # once per job (fetchone's prepare=True), not by the connection for all it runs
        # (threshold 0): a rare one (a lost end's check, the pool's own check) would cost a
        # round trip and a statement kept on the server for nothing. Django's None would ignore
        # prepare=True too; psycopg's default prepares any other statement after five runs.
        params.pop("prepare_threshold")
        if not settings.SPOOL.database.prepared_statements:
            params["prepare_threshold"] = None
        found = _pools[loop] = AsyncConnectionPool(
            kwargs=params,
            min_size=1,
            max_size=min(MAX_CONNECTIONS, settings.SPOOL.database.pool_size),
            max_idle=MAX_IDLE_SECONDS,
            timeout=settings.SPOOL.database.pool_timeout_seconds,
            open=False,
            name="spool-worker-loop",
        )
    return found


@asynccontextmanager
async def connection() -> AsyncIterator[psycopg.AsyncConnection]:
    pool = _pool()
    if pool.closed:
        await pool.open()
    async with pool.connection() as conn:
        yield conn


async def fetchone(statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of one autocommitted statement, prepared on its connection: parsed and
    planned the first time, then sent as its name and parameters."""
    stale = 0
    while True:
        async with connection() as conn:
            try:
                return await (await conn.execute(statement, params, prepare=True)).fetchone()
            except psycopg.errors.FeatureNotSupported:
                # "cached plan must not change result type": a migration changed the type of a
                # column the statement returns after this connection prepared it, and Postgres
                # refuses it from then on. It did nothing (it failed before it ran): it runs
                # again on another connection, and this one is closed (the pool replaces it).
                # Each connection meets this once: past that many, it is something else.
                stale += 1
                if stale > MAX_CONNECTIONS:
                    raise
                await conn.close()


async def check() -> None:
    """After an outage: test the idle connections all at once, dropping the broken ones, rather
    than meet them one per retry."""
    pool = _pools.get(asyncio.get_running_loop())
    if pool is not None and not pool.closed:
        await pool.check()
