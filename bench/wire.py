"""A minimal HTTP/1.1 keep-alive client on asyncio streams, far cheaper per event than httpx."""

# Cheap, so that the load client's own CPU and event-loop lag pollute the figures little.

from __future__ import annotations

import time
from asyncio import StreamReader, StreamWriter, open_connection
from collections.abc import AsyncIterator
from dataclasses import dataclass


class WireError(Exception):
    pass


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    reader: StreamReader

    @property
    def chunked(self) -> bool:
        return self.headers.get("transfer-encoding", "").lower() == "chunked"

    async def body(self) -> bytes:
        if self.chunked:
            return b"".join([data async for data, _ in self.pieces()])
        length = self.headers.get("content-length")
        if length is None:
            return await self.reader.read()  # connection: close
        return await self.reader.readexactly(int(length))

    async def pieces(self) -> AsyncIterator[tuple[bytes, float]]:
        """The body as it comes: (bytes, monotonic receipt time) per HTTP chunk."""
        if not self.chunked:
            data = await self.body()
            yield data, time.monotonic()
            return
        reader = self.reader
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readline()  # no trailers are sent: just the closing CRLF
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2], time.monotonic()


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.reader: StreamReader | None = None
        self.writer: StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await open_connection(self.host, self.port, limit=1 << 20)
        lines = [
            f"{method} {path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *rest = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2:
            raise WireError(f"bad status line {status_line!r}")
        fields = {}
        for line in rest:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return Response(int(parts[1]), fields, self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
