"""Runs an engine's chunk iterator on its own thread, so the job's writer can take whatever is
ready as one batch, and keep its heartbeat and see a cancel while the engine is silent."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.types import Chunk

END = object()


class EnginePump:
    def __init__(self, open_stream: Callable[[], Iterator[Chunk]], *, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(open_stream,), name=name, daemon=True)
        self._thread.start()

    def _run(self, open_stream: Callable[[], Iterator[Chunk]]) -> None:
        stream = None
        try:
            stream = open_stream()
            for chunk in stream:
                self._queue.put(chunk)
                if self._stop.is_set():
                    return
            self._queue.put(END)
        except BaseException as exc:  # handed to the writer, which ends the job with it
            self._queue.put(exc)
        finally:
            # Only this thread may close the generator; closing it stops an upstream request.
            if stream is not None and hasattr(stream, "close"):
                stream.close()

    def next_batch(self, timeout: float) -> list[Any]:
        """Everything ready now, waiting up to `timeout` for the first item; [] if none came.
        A batch may end with END or with the exception the engine raised."""
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while batch[-1] is not END and not isinstance(batch[-1], BaseException):
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def stop(self) -> None:
        """Ask the engine thread to stop after its current chunk. A thread blocked in a stalled
        read ends when the engine's own read timeout fires; the job does not wait for it."""
        self._stop.set()
