"""A small in-process cache whose entries are trusted for a bounded time (API keys, engines):
a hot path skips Postgres, and a change (a revoked key, a disabled engine) is seen within the TTL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")

# Bounds each cache of a process (unless it says otherwise): at this many entries it starts
# again empty.
MAX_ENTRIES = 10_000


def ttl() -> float:
    return float(settings.SPOOL.web.key_cache_seconds)


class TtlCache(Generic[T]):
    """Only hits are kept: something made a moment ago is never refused for a miss cached before
    it existed. The clock is injectable, so tests do not wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, T]] = {}

    def get(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]

    def remaining(self, key: str) -> float:
        """Seconds until the entry runs out; 0 without one."""
        entry = self._entries.get(key)
        return max(0.0, entry[0] - self.clock()) if entry is not None else 0.0

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def put(self, key: str, value: T, seconds: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (self.clock() + seconds, value)

    def clear(self) -> None:
        self._entries.clear()
