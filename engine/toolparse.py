"""Tool calling through plain text, for upstreams without native function calling.

Two halves:

- Prompting: `tools_system_prompt()` describes the tools and asks the model to answer a call as
  ``<tool_call>{"name": "...", "arguments": {...}}</tool_call>``; `render_messages()` turns the
  request's messages into ones such an upstream accepts (the description merged into the system
  message, earlier assistant `tool_calls` written back as that markup, role "tool" results as user
  messages wrapping ``<tool_response>`` blocks).
- Parsing: `ToolCallParser` sits on the raw content stream of one choice and turns the markup into
  the same tool-call fragments the native path yields, streaming the arguments as they arrive.

Parser rules (documented behaviour, relied on by tests):

- Text outside markup is content, byte for byte. Only a tail that could still become
  ``<tool_call>`` is held back; everything else is emitted by the same feed() that received it.
- Whitespace between ``<tool_call>`` and ``{`` and between ``}`` and ``</tool_call>`` is part of the
  markup. The key "parameters" is accepted for "arguments"; a missing "arguments" means ``{}``.
- A call is committed (its first fragment emitted) once its "name" is read. Markup that turns out
  malformed before that, or is still open at finish(), is flushed back as content unchanged.
- A committed call stays a call, like a native call cut off by max_tokens: if the model breaks the
  JSON afterwards, the call ends there and the text from the offending character on is content;
  if the output ends inside it, the arguments are whatever arrived.
- A missing ``</tool_call>`` after a complete JSON object is forgiven (local models often stop or
  start the next call without it).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from typing import Any

from engine.types import CONTENT, TOOL, Chunk

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_ID_ALPHABET = string.ascii_letters + string.digits
_WHITESPACE = " \t\r\n"


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---------------------------------------------------------------------------------------------
# Prompting


def tools_system_prompt(tools: list[dict[str, Any]], tool_choice: Any = None) -> str:
    """The system text that teaches a model without function calling to call these tools."""
    lines = [
        "You can call the following tools. Each is described by a JSON schema:",
        "<tools>",
    ]
    for tool in tools:
        function = tool.get("function", tool)
        entry = {"name": function.get("name", "")}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
        lines.append(json.dumps(entry, ensure_ascii=False))
    lines += [
        "</tools>",
        "To call a tool, answer with exactly this markup, one block per call and nothing inside "
        "the block but the JSON object:",
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>',
        "Results come back in <tool_response> blocks; then answer the user normally.",
    ]
    if tool_choice == "required":
        lines.append("You must call at least one tool now.")
    elif isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        if name:
            lines.append(f"You must call the tool {name!r} now.")
    return "\n".join(lines)


def _text_of(content: Any) -> str:
    """Message content as plain text (OpenAI allows a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def render_tool_call(name: str, arguments: Any) -> str:
    """One call as markup; arguments may be the JSON text or the decoded value."""
    if isinstance(arguments, str):
        # invalid JSON stays the model's own text (as a JSON string) rather than invented arguments
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments) if arguments.strip() else {}
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN}{body}{CLOSE}"


def render_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any = None
) -> list[dict[str, Any]]:
    """Messages for an upstream without function calling: no tool roles, no tool_calls fields."""
    prompt = tools_system_prompt(tools, tool_choice) if tools and tool_choice != "none" else ""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, so results say what they answer
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            text = _text_of(message.get("content"))
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                text += render_tool_call(function.get("name", ""), function.get("arguments", "{}"))
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            call_id = message.get("tool_call_id", "")
            name = message.get("name") or names.get(call_id, "")
            block = (
                f'<tool_response name="{name}" id="{call_id}">\n'
                f"{_text_of(message.get('content'))}\n</tool_response>"
            )
            # Consecutive results go in one user message: many chat templates insist that user
            # and assistant turns alternate.
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append(dict(message))
    for message in out:
        message.pop("_tool_results", None)
    if prompt:
        if out and out[0].get("role") in ("system", "developer"):
            first = dict(out[0])
            first["role"] = "system"
            first["content"] = prompt + "\n\n" + _text_of(first.get("content"))
            out[0] = first
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


# ---------------------------------------------------------------------------------------------
# Parsing


def _held_tail(text: str) -> int:
    """Length of the longest tail of text that is a proper prefix of OPEN (so may become one)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if text.endswith(OPEN[:size]):
            return size
    return 0


class _Call:
    """Scanner state for one ``<tool_call>`` block: a small JSON tokenizer for the outer object."""

    def __init__(self) -> None:
        self.raw: list[str] = [OPEN]  # everything consumed, for flushing back as content
        self.phase = "pre"  # pre -> body -> post
        self.state = "key_or_end"  # within body: key_or_end, key, colon, value_start, value, after
        self.key_raw: list[str] = []
        self.key = ""
        self.value_raw: list[str] = []
        self.value_kind = ""  # "container", "string" or "scalar"
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.name: str | None = None
        self.args_raw: list[str] | None = None  # raw text of the arguments value so far
        self.args_kind = ""
        self.args_done = False
        self.post = ""  # whitespace and partial CLOSE after the outer object
        self.committed = False
        self.index = -1
        self.sent_args = 0  # how many chars of args_raw were emitted


class ToolCallParser:
    """Streaming middleware: feed(content text) -> chunks; finish() -> the rest. One per choice."""

    def __init__(self) -> None:
        self._buf = ""  # unconsumed text
        self._call: _Call | None = None
        self._out: list[Chunk] = []
        self._content: list[str] = []
        self.calls = 0

    @property
    def called(self) -> bool:
        return self.calls > 0

    def feed(self, text: str) -> list[Chunk]:
        self._buf += text
        self._run(final=False)
        return self._take()

    def finish(self) -> list[Chunk]:
        self._run(final=True)
        call = self._call
        if call is not None:
            if call.committed:
                self._end_call(call)  # truncated or unclosed: it stays a call
            else:
                self._content.append("".join(call.raw))
            self._call = None
        self._content.append(self._buf)
        self._buf = ""
        return self._take()

    # -- plumbing --------------------------------------------------------------------------

    def _take(self) -> list[Chunk]:
        self._flush_content()
        call = self._call
        if call is not None and call.committed and call.args_raw is not None:
            self._send_args(call, final=False)
        out, self._out = self._out, []
        return out

    def _flush_content(self) -> None:
        text = "".join(self._content)
        self._content = []
        if text:
            self._out.append(Chunk(CONTENT, {"content": text}))

    def _run(self, *, final: bool) -> None:
        while self._buf:
            if self._call is None:
                at = self._buf.find(OPEN)
                if at == -1:
                    keep = 0 if final else _held_tail(self._buf)
                    self._content.append(self._buf[: len(self._buf) - keep])
                    self._buf = self._buf[len(self._buf) - keep :]
                    return
                self._content.append(self._buf[:at])
                self._buf = self._buf[at + len(OPEN) :]
                self._call = _Call()
                continue
            if not self._scan(self._call):
                return

    def _scan(self, call: _Call) -> bool:
        """Consume self._buf into the call; True when the call ended and text mode resumes."""
        buf = self._buf
        for i, ch in enumerate(buf):
            verdict = self._step(call, ch)
            if verdict == "ok":
                call.raw.append(ch)
                continue
            if verdict == "closed":
                self._end_call(call)
                self._buf = buf[i + 1 :]
            elif verdict == "unclosed":  # complete object, no CLOSE: forgive, re-read as text
                self._end_call(call)
                self._buf = call.post + buf[i:]
            else:  # malformed at ch
                if call.committed:
                    self._end_call(call)
                else:
                    self._content.append("".join(call.raw))
                self._buf = buf[i:]
            self._call = None
            return True
        self._buf = ""
        return False

    # -- the JSON scanner ------------------------------------------------------------------

    def _step(self, call: _Call, ch: str) -> str:
        if call.phase == "pre":
            if ch in _WHITESPACE:
                return "ok"
            if ch == "{":
                call.phase = "body"
                return "ok"
            return "bad"
        if call.phase == "post":
            candidate = call.post + ch
            if CLOSE.startswith(candidate.lstrip(_WHITESPACE)):
                call.post = candidate
                return "closed" if candidate.lstrip(_WHITESPACE) == CLOSE else "ok"
            return "unclosed" if self._complete(call) else "bad"
        return self._step_body(call, ch)

    def _step_body(self, call: _Call, ch: str) -> str:
        state = call.state
        if state == "key_or_end":
            if ch in _WHITESPACE:
                return "ok"
            if ch == '"':
                call.state, call.key_raw = "key", []
                return "ok"
            if ch == "}":
                return self._close_object(call)
            return "bad"
        if state == "key":
            if call.escaped:
                call.escaped = False
            elif ch == "\\":
                call.escaped = True
            elif ch == '"':
                try:
                    call.key = json.loads('"' + "".join(call.key_raw) + '"')
                except ValueError:
                    return "bad"
                call.state = "colon"
                return "ok"
            call.key_raw.append(ch)
            return "ok"
        if state == "colon":
            if ch in _WHITESPACE:
                return "ok"
            if ch == ":":
                call.state = "value_start"
                return "ok"
            return "bad"
        if state == "value_start":
            if ch in _WHITESPACE:
                return "ok"
            if ch in ",}]:":
                return "bad"
            call.state = "value"
            call.value_raw = []
            call.depth, call.in_string, call.escaped = 0, False, False
            call.value_kind = "container" if ch in "{[" else "string" if ch == '"' else "scalar"
            if self._is_args(call):
                if call.args_raw is not None:
                    return "bad"  # a second arguments key: refuse to guess which one counts
                call.args_raw, call.args_kind = call.value_raw, call.value_kind
            return self._value_char(call, ch)
        if state == "value":
            if call.value_kind == "scalar" and (ch in _WHITESPACE or ch in ",}"):
                verdict = self._value_done(call)
                if verdict != "ok":
                    return verdict
                return self._step_body(call, ch)
            return self._value_char(call, ch)
        # state == "after"
        if ch in _WHITESPACE:
            return "ok"
        if ch == ",":
            call.state = "key_or_end"
            return "ok"
        if ch == "}":
            return self._close_object(call)
        return "bad"

    def _value_char(self, call: _Call, ch: str) -> str:
        call.value_raw.append(ch)
        if call.in_string:
            if call.escaped:
                call.escaped = False
            elif ch == "\\":
                call.escaped = True
            elif ch == '"':
                call.in_string = False
                if call.value_kind == "string":
                    return self._value_done(call)
        elif ch == '"':
            call.in_string = True
        elif call.value_kind == "container":
            if ch in "{[":
                call.depth += 1
            elif ch in "}]":
                call.depth -= 1
                if call.depth == 0:
                    return self._value_done(call)
        return "ok"

    @staticmethod
    def _is_args(call: _Call) -> bool:
        return call.key in ("arguments", "parameters")

    def _value_done(self, call: _Call) -> str:
        call.state = "after"
        raw = "".join(call.value_raw)
        if call.key == "name" and call.name is None:
            try:
                name = json.loads(raw)
            except ValueError:
                return "bad"
            if not isinstance(name, str):
                return "bad"
            call.name = name
            self._commit(call)
        elif self._is_args(call):
            call.args_done = True
        return "ok"

    def _close_object(self, call: _Call) -> str:
        if call.name is None:
            return "bad"
        call.phase = "post"
        return "ok"

    @staticmethod
    def _complete(call: _Call) -> bool:
        return call.phase == "post" and call.name is not None

    # -- emitting --------------------------------------------------------------------------

    def _commit(self, call: _Call) -> None:
        """Emit the call's first fragment; content seen so far goes out first to keep order."""
        if call.committed:
            return
        self._flush_content()
        call.committed = True
        call.index = self.calls
        self.calls += 1
        self._out.append(Chunk(TOOL, {"index": call.index, "id": new_call_id(), "name": call.name or ""}))

    def _send_args(self, call: _Call, *, final: bool) -> None:
        raw = call.args_raw
        if raw is None:
            if final:
                self._out.append(Chunk(TOOL, {"index": call.index, "arguments": "{}"}))
            return
        if call.args_kind == "container":
            text = "".join(raw)
            if len(text) > call.sent_args:
                self._out.append(Chunk(TOOL, {"index": call.index, "arguments": text[call.sent_args :]}))
                call.sent_args = len(text)
            return
        if not final or call.sent_args:
            return  # a string or scalar cannot be streamed as an object: wait for all of it
        call.sent_args = 1
        self._out.append(Chunk(TOOL, {"index": call.index, "arguments": _normalize_args("".join(raw))}))

    def _end_call(self, call: _Call) -> None:
        self._send_args(call, final=True)


def _normalize_args(raw: str) -> str:
    """Arguments written as a JSON string holding an object, or null, as the object's text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if value is None:
        return "{}"
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return raw
        return value
    return raw
