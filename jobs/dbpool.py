"""Django's Postgres connection pool (psycopg_pool's, DATABASES' "pool" option) after an outage.

A checkout does not test its connection (that would cost a round trip each time), so after a
blip (Postgres restarted, a proxy's connections cut) every idle connection of the pool is dead,
and each would answer one request with an error before the pool dropped it. The first request
that meets the outage has them all tested at once instead, as soon as Postgres answers again:
psycopg_pool's `check()` takes the idle connections out, drops the broken ones and opens new ones
in their place.

Not before Postgres answers: while it is away, a dead idle connection fails its request at once
(503), where a pool with none left makes each request wait for a new one for the pool's whole
timeout."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.db import connection
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# While Postgres stays away, it is tried this often, for this long: past that, the next request
# that meets the outage starts over.
PROBE_INTERVAL_SECONDS = 0.5
PROBE_PATIENCE_SECONDS = 60.0
# libpq's least (whole seconds): a network that swallows packets does not hold the probe longer.
PROBE_CONNECT_TIMEOUT_SECONDS = 2

# Held while a check runs: the requests that meet the same outage meanwhile start none.
_checking = threading.Lock()


def check_idle_connections(pool: ConnectionPool | None = None) -> bool:
    """Once Postgres answers, test the idle connections of `pool` (by default Django's), on a
    thread of their own (the probe and the check block on round trips, too long for an event
    loop), unless a check is under way already: whether this call started one. Never raises:
    the request that met the outage answers the same whatever the check does."""
    if not _checking.acquire(blocking=False):
        return False
    try:
        threading.Thread(target=_check, args=(pool,), name="spool-db-pool-check", daemon=True).start()
    except Exception:
        _checking.release()
        log.exception("could not start testing the database pool's idle connections")
        return False
    return True


def _check(pool: ConnectionPool | None) -> None:
    try:
        # The alias's one pool, whichever thread asks; None on a backend without one.
        pool = pool or getattr(connection, "pool", None)
        if pool is not None and not pool.closed and _postgres_answers():
            pool.check()
    except Exception:
        log.exception("testing the database pool's idle connections failed")
    finally:
        _checking.release()


def _postgres_answers() -> bool:
    """Whether a new connection to Postgres can be made, tried until PROBE_PATIENCE_SECONDS."""
    params = {
        **connection.get_connection_params(),
        "connect_timeout": PROBE_CONNECT_TIMEOUT_SECONDS,
        "autocommit": True,
    }
    deadline = time.monotonic() + PROBE_PATIENCE_SECONDS
    while True:
        try:
            psycopg.connect(**params).close()
            return True
        except psycopg.Error:
            if time.monotonic() + PROBE_INTERVAL_SECONDS > deadline:
                return False
            time.sleep(PROBE_INTERVAL_SECONDS)
