"""A job's tokens as the tokens-per-minute limit counts them when it starts: its prompt (about
four characters a token, over the messages as sent, which costs one encode and no tokenizer) and
its most output tokens per choice. The job's usage corrects the count when it ends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings

CHARS_PER_TOKEN = 4


def estimated_tokens(request: dict[str, Any]) -> int:
    prompt = orjson.dumps([request.get("messages"), request.get("prompt"), request.get("tools")])
    choices = max(1, int(request.get("n") or 1)) * max(1, len(request.get("prompt") or [None]))
    output = request.get("max_tokens") or settings.SPOOL.scheduling.estimated_output_tokens
    return len(prompt) // CHARS_PER_TOKEN + choices * int(output)


def used_tokens(usage: Mapping[str, Any] | None) -> int | None:
    """What a job's usage says it used; None when it says nothing."""
    if not usage:
        return None
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
