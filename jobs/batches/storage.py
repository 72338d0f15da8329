"""The files' bytes, through the `spool_files` Django storage (the filesystem under
SPOOL_DATA_DIR by default, any django-storages backend by configuration): streamed in and out,
never held whole in memory."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from django.core.files import File as DjangoFile
from django.core.files.storage import Storage, storages

CHUNK = 64 * 1024


def files() -> Storage:
    return storages["spool_files"]


def save(name: str, content: Any) -> str:
    """Stores `content` (a Django File, read in chunks) under `name` or, when that is taken, a
    name the storage makes from it; the name it got."""
    return files().save(name, content)


def delete(name: str) -> None:
    if name:
        files().delete(name)


def lines(name: str, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """Each line of a stored file from byte `offset` on, with the offset just past it."""
    with files().open(name, "rb") as handle:
        handle.seek(offset)
        while raw := handle.readline():
            offset += len(raw)
            yield raw, offset


def chunks(name: str) -> Iterator[bytes]:
    with files().open(name, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class JsonLines:
    """A JSON Lines file written to local disk, then stored in one streamed save."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed by __exit__)
        self.count = 0

    def write(self, item: dict[str, Any]) -> None:
        self._file.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        self.count += 1

    def store(self, name: str) -> tuple[str, int]:
        """(the name it was stored under, its size in bytes)."""
        size = self._file.tell()
        self._file.seek(0)
        return save(name, DjangoFile(self._file, name=name)), size

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
