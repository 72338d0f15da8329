"""What the fake server says: each scenario turns a request into a list of SSE data payloads."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import orjson

WORDS = [
    "Spool",
    "streams",
    "every",
    "token",
    "of",
    "this",
    "deterministic",
    "reply",
    "so",
    "that",
    "tests",
    "can",
    "check",
    "exactly",
    "what",
    "arrived",
    "and",
    "in",
    "which",
    "order",
    "while",
    "the",
    "fake",
    "server",
    "keeps",
    "its",
    "promises",
]

REASONING = "The user wants an answer. I will think briefly, then reply in plain words."

TEXT_TOOL_CALLS = [
    ("get_current_weather", {"location": "Boston, MA", "unit": "celsius"}),
    ("get_current_weather", {"location": 'Tōkyō "東京"', "unit": "celsius"}),
    ("lookup", {"query": "a < b && c > d", "limit": 3, "exact": True, "tags": ["x", None]}),
]
TEXT_TOOLS_PREFIX = "Let me check the weather."

# Awkward split sizes for text-tools content: they cut inside tags, keys and escapes.
_SPLITS = (1, 3, 2, 5, 4, 7, 1, 6)

SCENARIOS = (
    "fake",
    "echo",
    "reasoning",
    "text-tools",
    "replay:seed000",
    "replay:parallel",
)


@dataclass(slots=True)
class Script:
    """The payloads (JSON text, or "[DONE]") to send, and which of them count as a paced token."""

    payloads: list[str]
    paced: list[bool]


def parse_model(model: str) -> tuple[str, dict[str, str]]:
    """'fake?tokens=5&tps=10' -> ('fake', {'tokens': '5', 'tps': '10'})."""
    name, _, query = (model or "fake").partition("?")
    return name or "fake", dict(parse_qsl(query, keep_blank_values=True))


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # Deliberately not the engine's estimator, so a test can tell a passed-through count from one.
    return max(1, len(json.dumps(messages, ensure_ascii=False)) // 4)


def _logprobs(token: str, position: int, top: int) -> dict[str, Any]:
    logprob = -round(0.05 + (position % 7) * 0.1, 4)
    alternatives = [token] + [f"alt{j}" for j in range(1, top)]
    entry = {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": alt, "logprob": round(logprob - j * 0.5, 4), "bytes": list(alt.encode())}
            for j, alt in enumerate(alternatives[:top])
        ],
    }
    return {"content": [entry], "refusal": None}


class _Builder:
    """Makes chunk objects that share one id/created/model, as OpenAI's do."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.base = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or "fake",
            "system_fingerprint": "fp_fake",
        }
        self.payloads: list[str] = []
        self.paced: list[bool] = []
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.want_logprobs = bool(body.get("logprobs"))
        self.top_logprobs = int(body.get("top_logprobs") or 0)

    def add(
        self,
        choice: int,
        delta: dict[str, Any],
        finish: str | None = None,
        *,
        paced: bool = False,
        logprobs: dict[str, Any] | None = None,
    ) -> None:
        chunk = dict(self.base)
        chunk["choices"] = [{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
        # orjson: the text json.dumps(separators=(",", ":"), ensure_ascii=False) makes, in a quarter
        # of the time. The whole script is made before its first token is sent, which a model
        # server does not do: with json it was 2.7 ms of a 200-token stream's first token.
        self.payloads.append(orjson.dumps(chunk).decode())
        self.paced.append(paced)

    def role(self, choice: int) -> None:
        self.add(choice, {"role": "assistant", "content": "", "refusal": None})

    def content(self, choice: int, text: str, position: int) -> None:
        logprobs = _logprobs(text, position, self.top_logprobs) if self.want_logprobs else None
        self.add(choice, {"content": text}, paced=True, logprobs=logprobs)
        self.completion_tokens += 1

    def reasoning(self, choice: int, text: str, field: str) -> None:
        self.add(choice, {field: text}, paced=True)
        self.completion_tokens += 1
        self.reasoning_tokens += 1

    def finish(self, choice: int, reason: str) -> None:
        self.add(choice, {}, reason)

    def usage(self) -> str:
        chunk = dict(self.base)
        chunk["choices"] = []
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens(self.body.get("messages") or []),
            "completion_tokens": self.completion_tokens,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        chunk["usage"] = usage
        return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)


def _cap(body: dict[str, Any]) -> int | None:
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(cap) if cap else None


def _words(count: int, offset: int) -> list[str]:
    return [(" " if i else "") + WORDS[(i + offset) % len(WORDS)] for i in range(count)]


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _texts(b: _Builder, choices: list[list[str]]) -> None:
    """Interleave the choices token by token, honouring max_tokens with finish_reason length."""
    cap = _cap(b.body)
    for c in range(len(choices)):
        b.role(c)
    longest = max(len(tokens) for tokens in choices)
    for i in range(min(longest, cap) if cap is not None else longest):
        for c, tokens in enumerate(choices):
            if i < len(tokens):
                b.content(c, tokens[i], i)
    for c, tokens in enumerate(choices):
        b.finish(c, "length" if cap is not None and cap < len(tokens) else "stop")


def fake(b: _Builder, params: dict[str, str]) -> None:
    tokens = int(params.get("tokens", 16))
    n = int(b.body.get("n") or 1)
    _texts(b, [_words(tokens, 7 * c) for c in range(n)])


def echo(b: _Builder, params: dict[str, str]) -> None:
    tokens = re.findall(r"\s*\S+", _last_user_text(b.body)) or [""]
    n = int(b.body.get("n") or 1)
    _texts(b, [tokens] * n)


def reasoning(b: _Builder, params: dict[str, str]) -> None:
    field = params.get("reasoning_field", "reasoning_content")
    b.role(0)
    for piece in re.findall(r"\s*\S+", REASONING):
        b.reasoning(0, piece, field)
    for i, token in enumerate(_words(int(params.get("tokens", 8)), 0)):
        b.content(0, token, i)
    b.finish(0, "stop")


def text_tools_markup(calls: int) -> str:
    text = TEXT_TOOLS_PREFIX
    for i in range(calls):
        name, arguments = TEXT_TOOL_CALLS[i % len(TEXT_TOOL_CALLS)]
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        text += f"\n<tool_call>\n{body}\n</tool_call>"
    return text


def text_tools(b: _Builder, params: dict[str, str]) -> None:
    text = text_tools_markup(int(params.get("calls", 1)))
    b.role(0)
    at, i = 0, 0
    while at < len(text):
        size = _SPLITS[i % len(_SPLITS)]
        b.content(0, text[at : at + size], i)
        at, i = at + size, i + 1
    b.finish(0, "stop")


GENERATED = {"fake": fake, "echo": echo, "reasoning": reasoning, "text-tools": text_tools}


def replay(name: str) -> list[str]:
    """A recorded stream's data payloads, verbatim (bytes after "data: ", up to the line end)."""
    if not re.fullmatch(r"[\w-]+", name):
        raise KeyError(name)
    try:
        text = resources.files("fakeupstream").joinpath(f"transcripts/{name}.sse").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(name) from None
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def script(scenario: str, params: dict[str, str], body: dict[str, Any]) -> Script:
    """The payloads for a request. Unknown scenario names behave like "fake"."""
    if scenario.startswith("replay:"):
        payloads = replay(scenario.partition(":")[2])
        return Script(payloads, [p != "[DONE]" for p in payloads])
    b = _Builder(body)
    GENERATED.get(scenario, fake)(b, params)
    options = body.get("stream_options") or {}
    if options.get("include_usage") and params.get("usage", "1") != "0":
        b.payloads.append(b.usage())
        b.paced.append(False)
    return Script(b.payloads, b.paced)


def has_finish(payload: str) -> bool:
    if payload == "[DONE]":
        return False
    return any(c.get("finish_reason") for c in json.loads(payload).get("choices") or [])


def aggregate(payloads: list[str], body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """A non-stream chat.completion object assembled from a stream's payloads."""
    first: dict[str, Any] | None = None
    usage = None
    choices: dict[int, dict[str, Any]] = {}
    for payload in payloads:
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        first = first or chunk
        usage = chunk.get("usage") or usage
        for raw in chunk.get("choices") or []:
            c = choices.setdefault(
                raw["index"],
                {"content": [], "reasoning": [], "tools": {}, "logprobs": [], "finish": None},
            )
            delta = raw.get("delta") or {}
            c["content"].append(delta.get("content") or "")
            c["reasoning"].append(delta.get("reasoning_content") or delta.get("reasoning") or "")
            for fragment in delta.get("tool_calls") or []:
                call = c["tools"].setdefault(
                    fragment["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function") or {}
                call["function"]["name"] = function.get("name") or call["function"]["name"]
                call["function"]["arguments"] += function.get("arguments") or ""
            c["logprobs"].extend(((raw.get("logprobs") or {}).get("content")) or [])
            c["finish"] = raw.get("finish_reason") or c["finish"]
    first = first or {"id": "chatcmpl-empty", "created": int(time.time()), "model": "fake"}
    out_choices = []
    for index in sorted(choices):
        c = choices[index]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(c["content"]) or None,
            "refusal": None,
        }
        if any(c["reasoning"]):
            message["reasoning_content"] = "".join(c["reasoning"])
        if c["tools"]:
            message["tool_calls"] = [c["tools"][k] for k in sorted(c["tools"])]
        out_choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": {"content": c["logprobs"], "refusal": None} if c["logprobs"] else None,
                "finish_reason": c["finish"],
            }
        )
    if usage is None and params.get("usage", "1") != "0":
        completion = sum(len([t for t in c["content"] if t]) for c in choices.values())
        prompt = prompt_tokens(body.get("messages") or [])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return {
        "id": first["id"],
        "object": "chat.completion",
        "created": first["created"],
        "model": first["model"],
        "system_fingerprint": first.get("system_fingerprint"),
        "choices": out_choices,
        "usage": usage,
    }


# ---- legacy completions (/v1/completions) ---------------------------------------------------


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """A legacy completions body as the chat body the scenarios read: each prompt a user message,
    n choices per prompt, the legacy integer logprobs as top_logprobs."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt or [""]]
    chat = {k: v for k, v in body.items() if k not in ("prompt", "suffix", "echo", "logprobs")}
    chat["messages"] = [{"role": "user", "content": p} for p in prompts]
    chat["n"] = int(body.get("n") or 1) * len(prompts)
    if body.get("logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = int(body["logprobs"])
    return chat


def _legacy_logprobs(chat: dict[str, Any] | None, offset: int) -> dict[str, Any] | None:
    entries = (chat or {}).get("content")
    if not entries:
        return None
    offsets, at = [], offset
    for entry in entries:
        offsets.append(at)
        at += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def legacy(script: Script) -> Script:
    """A chat stream's payloads as OpenAI's text_completion stream: text in place of deltas,
    no role-only events, logprobs in the legacy form."""
    offsets: dict[int, int] = {}
    payloads, paced = [], []
    for payload, is_token in zip(script.payloads, script.paced, strict=True):
        if payload == "[DONE]":
            payloads.append(payload)
            paced.append(is_token)
            continue
        chunk = json.loads(payload)
        choices = []
        for raw in chunk.get("choices") or []:
            text = (raw.get("delta") or {}).get("content") or ""
            if not text and not raw.get("finish_reason"):
                continue  # the role delta, or something legacy completions have no field for
            index = raw["index"]
            logprobs = _legacy_logprobs(raw.get("logprobs"), offsets.get(index, 0))
            offsets[index] = offsets.get(index, 0) + len(text)
            choices.append(
                {
                    "text": text,
                    "index": index,
                    "logprobs": logprobs,
                    "finish_reason": raw.get("finish_reason"),
                }
            )
        if not choices and chunk.get("choices"):
            continue
        chunk.update(object="text_completion", id="cmpl-" + chunk["id"].rpartition("-")[2], choices=choices)
        payloads.append(json.dumps(chunk, separators=(",", ":"), ensure_ascii=False))
        paced.append(is_token)
    return Script(payloads, paced)


def legacy_aggregate(payloads: list[str]) -> dict[str, Any]:
    """A non-stream text_completion object assembled from legacy stream payloads."""
    texts: dict[int, list[str]] = {}
    reasons: dict[int, str | None] = {}
    head: dict[str, Any] = {}
    usage = None
    for payload in payloads:
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        head = head or chunk
        usage = chunk.get("usage") or usage
        for raw in chunk.get("choices") or []:
            texts.setdefault(raw["index"], []).append(raw["text"])
            reasons[raw["index"]] = raw.get("finish_reason") or reasons.get(raw["index"])
    choices = [
        {"text": "".join(texts[i]), "index": i, "logprobs": None, "finish_reason": reasons.get(i)}
        for i in sorted(texts)
    ]
    return {**head, "choices": choices, "usage": usage}


# ---- embeddings ------------------------------------------------------------------------------

DEFAULT_EMBEDDING_DIMS = 8


def embedding(item: str | list[int], dims: int) -> list[float]:
    """A deterministic unit vector for one input: pseudo-random, seeded by the input, so a test
    can compute what the fake sent (and equal inputs get equal vectors)."""
    seed = hashlib.blake2b(json.dumps(item).encode(), digest_size=8).digest()
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded through float32 so the float and base64 answers carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def embeddings(body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """OpenAI's embeddings answer for the body; ValueError (a 400) for an input OpenAI refuses.
    The width is `dimensions`, else the model string's `dims` (default 8)."""
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        raise ValueError("'input' must be a string, an array of strings or of token arrays, not empty")
    if any(not item for item in inputs):
        raise ValueError("'$.input' is invalid: an input is empty")
    dims = int(body.get("dimensions") or params.get("dims") or DEFAULT_EMBEDDING_DIMS)
    base64_wanted = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector: Any = embedding(item, dims)
        if base64_wanted:
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    # Deliberately not the engine's estimator, so a test can tell a passed-through count from one.
    tokens = sum(max(1, len(item) // 4) if isinstance(item, str) else len(item) for item in inputs)
    answer: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model") or "fake"}
    if params.get("usage", "1") != "0":
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return answer
