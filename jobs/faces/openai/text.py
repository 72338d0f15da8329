"""Canonical chunks -> OpenAI's legacy text_completion objects, streamed and whole: text per
choice (the prompt first under echo), logprobs in the legacy form, one shared head."""

from __future__ import annotations

from typing import Any

from engine.types import CONTENT, ERROR, FINISH, PROMPT, USAGE, ChunkDict
from jobs.jobview import JobView
from jobs.protocols.openai_chat import ChunkStream, head, logprobs_by_choice, usage

ID_PREFIX = "cmpl-"
OBJECT = "text_completion"


def legacy_logprobs(entries: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    """Per-token entries (chat's form, which chunks carry) as the legacy lists; text_offset
    counts characters from `offset`, where the first token starts in the choice's text."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        # A prompt's first token has no logprob, so no alternatives either (null, as OpenAI's).
        "top_logprobs": [
            None if e["logprob"] is None else {t["token"]: t["logprob"] for t in e.get("top_logprobs") or []}
            for e in entries
        ],
        "text_offset": offsets,
    }


class _Echo:
    """What each choice's text starts with: its prompt under echo, else nothing."""

    def __init__(self, job: JobView) -> None:
        self.prompts: list[str] = job.request.get("prompt") or [""]
        self.n = int(job.request.get("n") or 1)
        self.on = bool(job.options.get("echo"))

    def lead(self, choice: int) -> str:
        return self.prompts[choice // self.n] if self.on else ""

    def choices_of(self, prompt: int) -> range:
        return range(prompt * self.n, (prompt + 1) * self.n)


class TextStreamRenderer(ChunkStream):
    """Turns a job's canonical chunks, in order, into the text_completion chunks OpenAI would
    send: the echoed prompt in each choice's first chunk, text_offset running on per choice,
    finish_reason only on a choice's last chunk, usage only under include_usage."""

    def __init__(self, job: JobView) -> None:
        super().__init__(job, OBJECT, ID_PREFIX)
        self.wants_logprobs = bool(job.request.get("logprobs"))
        self.echo = _Echo(job)
        self.offsets: dict[int, int] = {}  # choice -> characters sent so far

    def _lead(self, choice: int) -> str:
        """The echoed prompt, the first time a choice says anything."""
        if choice in self.offsets:
            return ""
        lead = self.echo.lead(choice)
        self.offsets[choice] = len(lead)
        return lead

    def feed(self, raw: ChunkDict) -> list[dict[str, Any]]:
        kind, data, choice = raw["type"], raw["data"], raw.get("choice", 0)
        if kind == PROMPT:
            # The echoed prompt, scored: the first chunk of each of its n choices.
            scored = legacy_logprobs(raw.get("logprobs") or [], 0)
            out = []
            for index in self.echo.choices_of(data["prompt"]):
                self.offsets[index] = len(data["content"])
                text = {"text": data["content"], "index": index, "logprobs": scored}
                out.append(self._chunk([{**text, "finish_reason": None}]))
            return out
        if kind == CONTENT:
            lead = self._lead(choice)
            logprobs = None
            if self.wants_logprobs:
                logprobs = legacy_logprobs(raw.get("logprobs") or [], self.offsets[choice])
            self.offsets[choice] += len(data["content"])
            text = {"text": lead + data["content"], "index": choice, "logprobs": logprobs}
            return [self._chunk([{**text, "finish_reason": None}])]
        if kind == USAGE:
            self.usage = data
            return []
        if kind == FINISH:
            reasons = data.get("choices") or [data.get("finish_reason")]
            out = [
                self._chunk([{"text": self._lead(i), "index": i, "logprobs": None, "finish_reason": reason}])
                for i, reason in enumerate(reasons)
            ]
            return out + self._end(kind, data)
        if kind == ERROR:
            return self._end(kind, data)
        return []  # thinking and tool calls have no field in this API; engines make none for it


def text_completion(job: JobView) -> dict[str, Any]:
    """The text_completion object of a finished job."""
    result = job.result or {}
    echo = _Echo(job)
    wants_logprobs = bool(job.request.get("logprobs"))
    logprobs = logprobs_by_choice(job) if wants_logprobs else {}
    # The scored prompts (echo with logprobs): their tokens come first in each of their choices.
    scored = {c["data"]["prompt"]: c.get("logprobs") or [] for c in job.chunks or [] if c["type"] == PROMPT}
    choices = []
    for index, choice in enumerate(result.get("choices") or []):
        lead = echo.lead(index)
        entries = scored.get(index // echo.n, []) + logprobs.get(index, [])
        offset = 0 if index // echo.n in scored else len(lead)
        choices.append(
            {
                "text": lead + (choice.get("content") or ""),
                "index": index,
                "logprobs": legacy_logprobs(entries, offset) if wants_logprobs else None,
                # A job that failed or was cancelled has no reason of its own per choice.
                "finish_reason": choice.get("finish_reason") or job.finish_reason or None,
            }
        )
    total = usage(result.get("usage") or job.usage)
    return {**head(job, OBJECT, ID_PREFIX), "choices": choices, "usage": total}
