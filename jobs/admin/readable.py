"""Turns a stored completion's JSON into what a person reads: turns, tool calls, token odds."""

from __future__ import annotations

import json
import math
from typing import Any

from jobs.models import StoredCompletion

# A logprobs table longer than this is cut: the raw JSON below it still has every token.
MAX_LOGPROB_TOKENS = 400


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def arguments(text: Any) -> str:
    """Tool-call arguments pretty-printed when they are JSON, as sent when they are not."""
    if not isinstance(text, str):
        return pretty(text)
    try:
        return pretty(json.loads(text))
    except ValueError:
        return text


def tool_calls(calls: Any) -> list[dict[str, str]]:
    out = []
    for call in calls or []:
        function = call.get("function") or {}
        out.append(
            {
                "id": call.get("id") or "",
                "name": function.get("name") or call.get("name") or "",
                "arguments": arguments(function.get("arguments", call.get("arguments", ""))),
            }
        )
    return out


def _content(content: Any) -> tuple[str, list[dict[str, str]]]:
    """(text, other parts) of a message's content, which may be a string or a list of parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, others = [], []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            kind = part.get("type", "part") if isinstance(part, dict) else "part"
            others.append({"type": kind, "value": pretty(part)})
    return "\n".join(texts), others


def turn(message: dict[str, Any]) -> dict[str, Any]:
    text, parts = _content(message.get("content"))
    return {
        "role": message.get("role") or "?",
        "name": message.get("name") or "",
        "text": text,
        "parts": parts,
        "tool_calls": tool_calls(message.get("tool_calls")),
        "tool_call_id": message.get("tool_call_id") or "",
        "thinking": message.get("reasoning_content") or "",
        "refusal": message.get("refusal") or "",
    }


def _percent(logprob: Any) -> str:
    try:
        return f"{math.exp(float(logprob)) * 100:.1f}%"
    except (TypeError, ValueError, OverflowError):
        return ""


def logprob_rows(logprobs: Any) -> tuple[list[dict[str, Any]], int]:
    """Token rows (token, logprob, probability, alternatives) and how many were left out."""
    content = (logprobs.get("content") or []) if isinstance(logprobs, dict) else []
    rows = []
    for item in content[:MAX_LOGPROB_TOKENS]:
        rows.append(
            {
                "token": item.get("token", ""),
                "logprob": f"{float(item.get('logprob', 0.0)):.4f}",
                "probability": _percent(item.get("logprob")),
                "top": [
                    {"token": alt.get("token", ""), "probability": _percent(alt.get("logprob"))}
                    for alt in item.get("top_logprobs") or []
                ],
            }
        )
    return rows, max(len(content) - MAX_LOGPROB_TOKENS, 0)


def choices(response: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for choice in response.get("choices") or []:
        rows, cut = logprob_rows(choice.get("logprobs"))
        out.append(
            {
                "index": choice.get("index", 0),
                "finish_reason": choice.get("finish_reason") or "",
                "message": turn(choice.get("message") or {}),
                "logprobs": rows,
                "logprobs_cut": cut,
            }
        )
    return out


def scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def usage_rows(usage: dict[str, Any] | None) -> list[tuple[str, Any]]:
    return [(name, value) for name, value in (usage or {}).items() if not isinstance(value, dict)]


def context(stored: StoredCompletion) -> dict[str, Any]:
    """Everything the detail page shows below its summary fields."""
    request = stored.request or {}
    return {
        "turns": [turn(m) for m in request.get("messages") or [] if isinstance(m, dict)],
        "choices": choices(stored.response or {}),
        "metadata": sorted((str(k), scalar(v)) for k, v in (stored.metadata or {}).items()),
        "params": sorted((str(k), scalar(v)) for k, v in (request.get("params") or {}).items()),
        "usage": usage_rows(stored.usage),
        "raw_request": pretty(stored.request),
        "raw_response": pretty(stored.response),
    }
