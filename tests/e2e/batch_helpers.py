"""Helpers for the Batch API end-to-end tests: input files written line by line, a batch polled
to its end, and an output or error file read back through the SDK."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import openai
from openai.types import Batch

ENDED = {"completed", "failed", "expired", "cancelled"}


def chat_line(custom_id: str, model: str, text: str = "Hello", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def jsonl(items: list[Any]) -> bytes:
    return b"".join(
        (item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n" for item in items
    )


def upload(client: openai.OpenAI, items: list[Any], name: str = "input.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(jsonl(items))), purpose="batch").id


def run(
    client: openai.OpenAI, items: list[Any], endpoint: str = "/v1/chat/completions", **kwargs: Any
) -> Batch:
    file_id = upload(client, items)
    return client.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h", **kwargs)  # type: ignore[arg-type]


def wait(client: openai.OpenAI, batch_id: str, until: set[str] = ENDED, timeout: float = 120) -> Batch:
    """Polls retrieve until the batch's status is in `until` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status} after {timeout} s"
        time.sleep(0.2)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]
