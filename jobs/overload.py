"""Telling an overloaded server (its own connection pools busy past their timeout) from an outage
of Redis or Postgres: the first asks the client to come back soon, the second says what is down."""

from __future__ import annotations

import redis
from psycopg_pool import PoolTimeout


class RedisPoolExhausted(redis.ConnectionError):
    """Every connection of this process's Redis pool stayed busy past the pool's timeout."""

    def __init__(self, size: int) -> None:
        super().__init__(f"all {size} Redis connections of this process stayed busy")


def is_overload(exc: BaseException) -> bool:
    """True when exc (or what caused it: Django wraps psycopg's errors) is a pool timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RedisPoolExhausted | PoolTimeout):
            return True
        seen = seen.__cause__
    return False
