"""Server-sent events: the event type, an incremental parser, and the wire form for proxying."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event as received. A comment (": keep-alive") is an event with only `comment` set."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)

    def encode(self) -> str:
        """The event in SSE wire form, ready to send on to another client."""
        if self.comment is not None:
            return f":{self.comment}\n\n"
        lines = []
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event != "message":
            lines.append(f"event: {self.event}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return "\n".join(lines) + "\n\n"


class LineSplitter:
    """Splits decoded text into lines at CRLF, LF or CR, as the SSE spec says, and nowhere else
    (str.splitlines would also split at U+2028 and friends, which may sit inside JSON data)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._pending_cr = False

    def feed(self, text: str) -> list[str]:
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two pieces
        buffer = self._buffer + text
        lines = _LINE_BREAK.split(buffer)
        self._buffer = lines.pop()
        self._pending_cr = buffer.endswith("\r")
        return lines


class SSEDecoder:
    """Turns lines into events. An event is dispatched only at the blank line that ends it, so a
    connection cut in the middle of an event never yields a partial one."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if line == "":
            if not self._data:
                self._reset()
                return None
            event = ServerSentEvent(
                event=self._event or "message", data="\n".join(self._data), id=self._id, retry=self._retry
            )
            self._reset()
            return event
        if line.startswith(":"):
            return ServerSentEvent(comment=line[1:])
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def parse(pieces: Iterable[str]) -> Iterator[ServerSentEvent]:
    splitter, decoder = LineSplitter(), SSEDecoder()
    for piece in pieces:
        for line in splitter.feed(piece):
            event = decoder.feed(line)
            if event is not None:
                yield event


async def aparse(pieces: AsyncIterator[str]) -> AsyncGenerator[ServerSentEvent, None]:
    splitter, decoder = LineSplitter(), SSEDecoder()
    async for piece in pieces:
        for line in splitter.feed(piece):
            event = decoder.feed(line)
            if event is not None:
                yield event
