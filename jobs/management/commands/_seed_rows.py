"""Realistic stored-completion rows (and their jobs) for spool_seed_completions: varied models,
owners, sizes, outcomes, tool calls, logprobs and metadata keys and values."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.types import GenerationRequest
from jobs.models import Engine
from jobs.protocols.openai_chat import completion_id

CORPUS = Path(__file__).resolve().parents[3] / "engine" / "offline" / "data" / "shakespeare.txt"
DEFAULTS = GenerationRequest(messages=[]).to_dict()

# (name, kind, share of traffic, tokens per second): the models a busy deployment serves.
ENGINES = [
    ("gpt-4o-mini", "openai", 0.36, 95),
    ("gpt-4o", "openai", 0.14, 60),
    ("llama3.1-8b", "openai", 0.14, 70),
    ("qwen2.5-7b", "openai", 0.10, 80),
    ("spool-offline", "offline", 0.10, 30),
    ("mistral-small", "openai", 0.09, 75),
    ("gateway-claude", "openai", 0.07, 55),
]
OWNERS = [
    "search-svc",
    "support-bot",
    "ads-ranker",
    "docs-assistant",
    "eval-runner",
    "amara",
    "bruno",
    "chen",
    "dana",
    "eitan",
    "fatima",
    "gustav",
    "hana",
    "ines",
    "jonas",
    "keiko",
    "luis",
    "mei",
    "nadia",
    "omar",
    "priya",
    "rosa",
    "sven",
    "ci-nightly",
    "notebook-shared",
]
TEAMS = [
    "search",
    "support",
    "ads",
    "docs",
    "growth",
    "risk",
    "infra",
    "data",
    "mobile",
    "legal",
    "sales",
    "research",
]
FEATURES = [
    f"{verb}-{noun}"
    for verb in ("summarize", "classify", "draft", "rank", "extract")
    for noun in ("ticket", "email", "query", "doc", "review", "chat", "invoice", "bug")
]
SYSTEM_PROMPTS = [
    "You are a helpful assistant. Answer briefly.",
    "You are a support agent for an online store. Be polite and precise.",
    "You summarize documents for busy executives in three sentences.",
    "You classify customer messages into: billing, shipping, account, other.",
    "You are a careful editor. Keep the author's voice.",
    "Answer in the language of the question. Cite the passage you used.",
]
TASKS = [
    "Summarize the following passage:",
    "Who is speaking here, and what do they want?",
    "Rewrite this in modern English:",
    "Classify the tone of this text:",
    "Extract every person named in:",
    "Answer the question using only this text:",
    "Write a reply to this message:",
    "Translate into plain prose:",
]
TOOLS = {
    "get_weather": {"city": ["Rome", "Antium", "London", "Corioli"], "unit": ["celsius", "fahrenheit"]},
    "search_docs": {"query": ["refund policy", "shipping times", "reset password", "api limits"]},
    "lookup_order": {"order_id": [f"ORD-{n}" for n in range(10000, 10040)]},
    "create_ticket": {"priority": ["low", "normal", "high"], "queue": ["billing", "shipping", "account"]},
}


# (code, share of failed jobs, message): what the worker records on failure (finish_reason).
FAILURES = [
    ("upstream_error", 0.55, "upstream error: Upstream answered 502 Bad Gateway."),
    ("upstream_timeout", 0.30, "upstream did not answer within 60 s"),
    ("engine_error", 0.10, "RuntimeError: the engine stopped"),
    ("worker_lost", 0.05, "The worker running this job stopped; it was ended."),
]


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return list(itertools.accumulate(1 / (rank**s) for rank in range(1, n + 1)))


class Picker:
    """Weighted choice by bisecting cumulative weights: fast enough for millions of draws."""

    def __init__(self, values: list[Any], cumulative: list[float], rng: random.Random) -> None:
        self.values, self.cumulative, self.rng = values, cumulative, rng

    def __call__(self) -> Any:
        return self.values[bisect.bisect(self.cumulative, self.rng.random() * self.cumulative[-1])]


class Generator:
    """Builds (job, stored completion) row dicts; created_at rises from `start` to `end`, with
    traffic growing over time as it does in a service that is being adopted."""

    def __init__(self, rng: random.Random, owners: list[int], engines: list[Engine]) -> None:
        self.rng = rng
        text = CORPUS.read_text()
        self.corpus = " ".join(text.split())
        self.owner = Picker(owners, zipf_weights(len(owners), 0.9), rng)
        shares = {name: (share, tps) for name, _, share, tps in ENGINES}
        self.engine = Picker(
            [(e, shares[e.name][1]) for e in engines],
            list(itertools.accumulate(shares[e.name][0] for e in engines)),
            rng,
        )
        pick = lambda values, weights=None: Picker(  # noqa: E731
            values, weights or zipf_weights(len(values)), rng
        )
        # (key, share of rows that carry it, value source)
        self.metadata_keys: list[tuple[str, float, Any]] = [
            ("team", 0.92, pick(TEAMS)),
            ("env", 0.85, pick(["prod", "staging", "dev"], [0.75, 0.93, 1.0])),
            ("feature", 0.6, pick(FEATURES)),
            ("user_tier", 0.5, pick(["free", "pro", "enterprise"], [0.6, 0.9, 1.0])),
            ("region", 0.4, pick(["us-east", "us-west", "eu-west", "eu-central", "ap-south", "sa-east"])),
            ("customer", 0.35, pick([f"cust-{n:04d}" for n in range(1, 5001)])),
            ("lang", 0.3, pick(["en", "de", "fr", "es", "ja", "pt"], [0.7, 0.78, 0.85, 0.92, 0.96, 1.0])),
            ("prompt_version", 0.3, pick([f"v{n}" for n in range(14, 0, -1)])),
            ("run", 0.2, lambda: str(rng.randint(1, 50000))),
            ("experiment", 0.15, pick([f"exp-{n:02d}" for n in range(1, 26)])),
            ("trace_id", 0.08, lambda: f"{rng.getrandbits(64):016x}"),
            ("ticket", 0.05, lambda: f"SUP-{rng.randint(1000, 99999)}"),
            ("eval_set", 0.04, pick(["mmlu-mini", "gsm8k-50", "support-golden", "tone-v2", "pii-v1"])),
            ("verdict", 0.03, pick(["good", "bad", "unsure"], [0.6, 0.9, 1.0])),
        ]
        self.face = pick(["openai", "semoss", "native"], [0.6, 0.95, 1.0])
        self.failure = pick(
            [(code, message) for code, _, message in FAILURES],
            list(itertools.accumulate(share for _, share, _ in FAILURES)),
        )

    def text(self, median_chars: float, sigma: float = 0.9, cap: int = 12000) -> str:
        length = min(int(self.rng.lognormvariate(math.log(median_chars), sigma)) + 1, cap)
        start = self.rng.randrange(0, len(self.corpus) - length - 1)
        return self.corpus[start : start + length].strip() or "Speak."

    def metadata(self) -> dict[str, str]:
        return {key: str(source()) for key, share, source in self.metadata_keys if self.rng.random() < share}

    def tool_call(self, n: int) -> dict[str, Any]:
        name = self.rng.choice(list(TOOLS))
        args = {arg: self.rng.choice(values) for arg, values in TOOLS[name].items()}
        return {"id": f"call_{self.rng.getrandbits(48):012x}{n}", "name": name, "arguments": json.dumps(args)}

    def messages(self, with_tools: bool) -> list[dict[str, Any]]:
        rng = self.rng
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.7:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):  # earlier turns of a conversation
            messages.append({"role": "user", "content": self.text(120)})
            messages.append({"role": "assistant", "content": self.text(300)})
        if with_tools and rng.random() < 0.3:
            call = self.tool_call(0)
            messages.append({"role": "user", "content": f"{rng.choice(TASKS)} {self.text(80)}"})
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": self.text(200)})
        messages.append({"role": "user", "content": f"{rng.choice(TASKS)}\n\n{self.text(260)}"})
        return messages

    def row(self, created: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        rng = self.rng
        engine, tokens_per_second = self.engine()
        outcome = rng.random()
        status = "succeeded" if outcome < 0.93 else ("failed" if outcome < 0.965 else "cancelled")
        with_tools = engine.kind == "openai" and rng.random() < 0.15
        messages = self.messages(with_tools)
        wants_logprobs = rng.random() < 0.04
        params: dict[str, Any] = {
            "temperature": rng.choice([0.0, 0.2, 0.3, 0.7, 1.0]),
            "max_tokens": rng.choice([256, 512, 1024, 2048, 4096]),
        }
        if rng.random() < 0.2:
            params["seed"] = rng.randint(1, 1000)
        if with_tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "parameters": {
                            "type": "object",
                            "properties": {arg: {"type": "string"} for arg in args},
                        },
                    },
                }
                for name, args in TOOLS.items()
            ]
        if wants_logprobs:
            params.update(logprobs=True, top_logprobs=3)

        calls: list[dict[str, Any]] = []
        content = ""
        if status == "succeeded":
            finish = (
                "tool_calls" if with_tools and rng.random() < 0.6 else rng.choice(["stop"] * 6 + ["length"])
            )
            if finish == "tool_calls":
                calls = [self.tool_call(i) for i in range(rng.choice([1, 1, 1, 2]))]
            else:
                content = self.text(60 if wants_logprobs else 420, cap=240 if wants_logprobs else 12000)
        else:
            finish, error = self.failure() if status == "failed" else ("cancelled", "The job was cancelled.")
            content = self.text(80) if status == "cancelled" else ""
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        usage = {
            "input_tokens": prompt_chars // 4 + 3 * len(messages),
            "output_tokens": max(len(content) // 4, 12 * len(calls), 0),
        }

        queued = timedelta(milliseconds=rng.lognormvariate(math.log(25), 0.8))
        to_first = queued + timedelta(milliseconds=rng.lognormvariate(math.log(320), 0.6))
        generating = usage["output_tokens"] / tokens_per_second * rng.uniform(0.8, 1.3)
        total = to_first + timedelta(seconds=generating)
        first: timedelta | None = to_first
        if status == "failed" and rng.random() < 0.5:
            first = None  # failed before the first chunk: an upstream refused or timed out
        metadata = self.metadata()
        stream = rng.random() < 0.55

        job_id = uuid.uuid4()
        logprobs = None
        if wants_logprobs and content:
            logprobs = {
                "content": [self.logprob(token) for token in content.split(" ")[:60]],
                "refusal": None,
            }
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls and not content else content,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        response = {
            "id": completion_id(job_id),
            "object": "chat.completion",
            "created": int(created.timestamp()),
            "model": engine.name,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": usage["input_tokens"],
                "completion_tokens": usage["output_tokens"],
                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            },
        }
        options = {"store": True, "metadata": metadata, "stream": stream}
        job = {
            "id": job_id,
            "owner_id": self.owner(),
            "engine_id": engine.pk,
            "face": self.face(),
            "request": {**DEFAULTS, **params, "messages": messages},
            "options": options,
            "status": status,
            "created_at": created,
            "started_at": created + queued,
            "first_chunk_at": created + first if first is not None else None,
            "finished_at": created + total,
            "finish_reason": finish,
            "usage": usage,
            "error": "" if status == "succeeded" else error,
            "result": {
                "choices": [
                    {"content": content, "tool_calls": calls, "thinking": "", "finish_reason": finish}
                ],
                "usage": usage,
            },
        }
        stored = {
            "id": completion_id(job_id),
            "owner_id": job["owner_id"],
            "job_id": job_id,
            "engine_id": engine.pk,
            "model": engine.name,
            "face": job["face"],
            "metadata": metadata,
            "request": {
                "messages": messages,
                "params": {
                    **params,
                    "store": True,
                    "stream": stream,
                    **({"metadata": metadata} if metadata else {}),
                },
            },
            "response": response,
            "usage": usage,
            "status": status,
            "finish_reason": finish,
            "created_at": created,
            "first_token_ms": round(first.total_seconds() * 1000) if first is not None else None,
            "duration_ms": round(total.total_seconds() * 1000),
        }
        return job, stored

    def logprob(self, token: str) -> dict[str, Any]:
        chosen = -abs(self.rng.gauss(0, 0.8))
        top = [{"token": token, "logprob": chosen, "bytes": list(token.encode())}]
        for alt in self.rng.sample(["the", "a", "my", "his", "lord", ",", "."], 2):
            top.append(
                {"token": alt, "logprob": chosen - abs(self.rng.gauss(1.5, 1)), "bytes": list(alt.encode())}
            )
        return {"token": token, "logprob": chosen, "bytes": list(token.encode()), "top_logprobs": top}


def timestamps(count: int, start: datetime, end: datetime, rng: random.Random) -> Iterator[datetime]:
    """Rising times whose density grows linearly from start to end."""
    span = (end - start).total_seconds()
    for i in range(count):
        yield start + timedelta(seconds=span * math.sqrt((i + rng.random()) / count))
