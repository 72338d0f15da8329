"""Helpers for the OpenAI-face end-to-end tests: SDK clients, engines on the fake upstream, and
a raw SSE reader for checking the wire format byte by byte."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai

from tests.servers import Spool, User

OFFLINE = "spool-offline"
# The offline engine's end-of-text token is id 0: banning it makes a reply run to max tokens.
NO_EOT = {"0": -100}


def client(spool: Spool, user: User | None = None, **kwargs: Any) -> openai.OpenAI:
    user = user or spool.alice
    return openai.OpenAI(base_url=spool.base_url + "/v1", api_key=user.secret_key, max_retries=0, **kwargs)


def upstream_engine(name: str, base_url: str, model: str) -> str:
    """An engine of kind "openai" pointing at the fake upstream with a scenario; returns its name."""
    from jobs import services

    services.engine_upsert(name=name, kind="openai", config={"base_url": base_url, "model": model})
    return name


def raw_stream(
    spool: Spool, body: dict[str, Any], user: User | None = None, path: str = "/v1/chat/completions"
) -> tuple[httpx.Response, list[str]]:
    """POST a streaming request; (response, every line of the body as sent, blank lines included)."""
    user = user or spool.alice
    headers = {"Authorization": f"Bearer {user.secret_key}"}
    with httpx.stream(
        "POST",
        f"{spool.base_url}{path}",
        json={"stream": True, **body},
        headers=headers,
        timeout=60,
    ) as response:
        lines = list(response.iter_lines())
    return response, lines


def data_events(lines: list[str]) -> list[Any]:
    """The data payloads in order, JSON-decoded except the final "[DONE]"."""
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
