"""ModelEngine: ask an engine a question in the style of ai-server-sdk's ModelEngine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spool_client.client import Spool
from spool_client.errors import SpoolError
from spool_client.events import ContentDelta, Error
from spool_client.stream import JobStream


def _fields(command: str | None, context: str | None, param_dict: dict[str, Any] | None) -> dict[str, Any]:
    """The job fields for an ai-server-sdk style call: `full_prompt` in param_dict (OpenAI
    messages, or a string) replaces `command`; the other entries are OpenAI parameters."""
    params = dict(param_dict or {})
    full_prompt = params.pop("full_prompt", None)
    fields: dict[str, Any] = {"context": context, "parameters": params or None}
    if isinstance(full_prompt, str):
        fields["messages"] = [{"role": "user", "content": full_prompt}]
    elif full_prompt is not None:
        fields["messages"] = full_prompt
    elif command is not None:
        fields["command"] = command
    else:
        raise ValueError("Either command or param_dict['full_prompt'] must be provided")
    return fields


def output(job: dict[str, Any]) -> dict[str, Any]:
    """ai-server-sdk's ask() output for a finished job; a failed or cancelled one raises."""
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise SpoolError(error.get("message") or f"The job ended {job['status']}.", code=error.get("code"))
    choices = job["result"]["choices"]
    first = choices[0] if choices else {"content": "", "tool_calls": []}
    usage = job.get("usage") or {}
    out: dict[str, Any] = {
        "response": first["content"],
        "messageType": "CHAT",
        "messageId": job["id"],
        "numberOfTokensInPrompt": usage.get("input_tokens", 0),
        "numberOfTokensInResponse": usage.get("output_tokens", 0),
    }
    if first["tool_calls"]:
        out["messageType"] = "TOOL"
        out["response"] = [
            {"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in first["tool_calls"]
        ]
    return out


def embeddings_output(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "response": answer["embeddings"],
        "numberOfTokensInPrompt": answer["usage"]["input_tokens"],
        "numberOfTokensInResponse": 0,
    }


class ModelEngine:
    """An engine (by id or name) on a Spool server; without `spool`, the last Spool made."""

    def __init__(self, engine_id: str, spool: Spool | None = None) -> None:
        self.engine_id = engine_id
        self._spool = spool

    @property
    def spool(self) -> Spool:
        return self._spool or Spool.default()

    def ask(
        self, command: str | None = None, context: str | None = None, param_dict: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a job and wait for it: {"response", "messageType", "messageId" (the job id),
        "numberOfTokensInPrompt", "numberOfTokensInResponse"}. Raises SpoolError if it fails."""
        job = self.spool.create_job(self.engine_id, **_fields(command, context, param_dict))
        return output(self.spool.wait(job["id"]))

    async def async_ask(
        self, command: str | None = None, context: str | None = None, param_dict: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        job = await self.spool.async_create_job(self.engine_id, **_fields(command, context, param_dict))
        return output(await self.spool.async_wait(job["id"]))

    def stream(
        self, command: str | None = None, context: str | None = None, param_dict: dict[str, Any] | None = None
    ) -> JobStream:
        """Start a job and return its event stream."""
        return self.spool.stream(self.engine_id, **_fields(command, context, param_dict))

    def embeddings(
        self, strings_to_embed: str | list[str], param_dict: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One vector per string, as ai-server-sdk's embeddings() answers: {"response": [[...]],
        "numberOfTokensInPrompt", "numberOfTokensInResponse": 0}. param_dict: dimensions, user."""
        texts = [strings_to_embed] if isinstance(strings_to_embed, str) else strings_to_embed
        return embeddings_output(self.spool.embeddings(self.engine_id, texts, **(param_dict or {})))

    async def async_embeddings(
        self, strings_to_embed: str | list[str], param_dict: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        texts = [strings_to_embed] if isinstance(strings_to_embed, str) else strings_to_embed
        return embeddings_output(
            await self.spool.async_embeddings(self.engine_id, texts, **(param_dict or {}))
        )

    async def async_stream(
        self, command: str | None = None, context: str | None = None, param_dict: dict[str, Any] | None = None
    ) -> JobStream:
        return await self.spool.async_stream(self.engine_id, **_fields(command, context, param_dict))

    def stream_ask(
        self, command: str | None = None, context: str | None = None, param_dict: dict[str, Any] | None = None
    ) -> Iterator[str]:
        """The answer's text as it comes, like ai-server-sdk's stream_ask."""
        for event in self.stream(command, context, param_dict).iter():
            if isinstance(event, ContentDelta) and event.choice == 0:
                yield event.text
            elif isinstance(event, Error):
                raise SpoolError(event.message, code=event.code)
