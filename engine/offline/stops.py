"""Holds back generated tokens that could begin a stop sequence, so output never contains one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class StopGuard(Generic[T]):
    """Takes tokens one at a time and releases whole tokens once no stop sequence can reach them.

    A stop sequence may span several tokens, so the tail that could still be the start of one
    waits here. Each token carries a payload (its logprobs entry) that travels with its text.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held: list[tuple[str, T]] = []

    def push(self, text: str, payload: T) -> tuple[list[tuple[str, T]], bool]:
        """Adds a token. Returns the (text, payload) pairs now safe to emit, and whether a stop
        sequence was completed. After a stop the text is cut where the sequence starts."""
        if not self.stops:
            return [(text, payload)], False
        self._held.append((text, payload))
        buffer = "".join(t for t, _ in self._held)
        hits = [i for i in (buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            return self._cut(min(hits)), True
        safe = len(buffer) - self._longest_partial(buffer)
        released: list[tuple[str, T]] = []
        end = 0
        while self._held and end + len(self._held[0][0]) <= safe:
            token = self._held.pop(0)
            end += len(token[0])
            released.append(token)
        return released, False

    def flush(self) -> list[tuple[str, T]]:
        """Releases everything held back: the output ended without completing a stop sequence."""
        released, self._held = self._held, []
        return released

    def _cut(self, at: int) -> list[tuple[str, T]]:
        released: list[tuple[str, T]] = []
        start = 0
        for text, payload in self._held:
            if start >= at:
                break
            released.append((text[: at - start], payload))
            start += len(text)
        self._held = []
        return released

    def _longest_partial(self, buffer: str) -> int:
        # Length of the longest suffix of buffer that is a proper prefix of some stop sequence.
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:k]):
                    best = k
                    break
        return best
