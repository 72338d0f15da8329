"""The hand-maintained OpenAPI 3.1 document of /v1/jobs, served at /v1/jobs/openapi.json."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "Invalid input: the envelope names the parameter and a code.",
        401: "Missing or invalid API key.",
        404: "No such job (also another user's job), or no such engine.",
        429: "Over a rate limit or the cap on jobs at once; see Retry-After.",
        503: "Redis or Postgres is unreachable for now; see Retry-After.",
    }
    # Every authenticated call counts against the caller's rate limit and needs Redis/Postgres.
    return {str(status): _json(_ref("Error"), meaning[status]) for status in (*statuses, 429, 503)}


NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
AFTER = {
    "name": "after",
    "in": "query",
    "description": "The sequence number of the last chunk seen; -1 (the default) starts at the beginning.",
    "schema": {"type": "integer", "minimum": -1, "default": -1},
}


def _wait(what: str) -> dict[str, Any]:
    return {
        "name": "wait",
        "in": "query",
        "description": f"Seconds to wait for {what}; answers as soon as it happens.",
        "schema": {"type": "number", "minimum": 0, "maximum": 30, "default": 0},
    }


EVENT_DATA: dict[str, Any] = {
    "chunk": _ref("Chunk"),
    "error": {"anyOf": [_ref("Chunk"), _ref("Error")]},
    "result": _ref("Job"),
    "done": {"type": "object", "maxProperties": 0},
}


def _event_data(event: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`data` of an event of this name holds JSON matching schema."""
    content = {"contentMediaType": "application/json", "contentSchema": schema}
    return {
        "if": {"properties": {"event": {"const": event}}},
        "then": {"properties": {"data": content}},
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": NULLABLE_STRING,
                    "code": NULLABLE_STRING,
                },
            }
        },
    },
    "JobCreate": {
        "type": "object",
        "description": "Give engine (or model) and messages (or command).",
        "additionalProperties": False,
        "properties": {
            "engine": {"type": "string", "description": "An engine id or name."},
            "model": {"type": "string", "description": "Another name for `engine`."},
            "messages": {
                "type": "array",
                "items": {"type": "object"},
                "description": "OpenAI chat messages.",
            },
            "command": {"type": "string", "description": "One user message."},
            "context": {"type": "string", "description": "A system prompt put first."},
            "parameters": {
                "type": "object",
                "description": (
                    "OpenAI parameters: temperature, top_p, max_completion_tokens (or max_tokens), stop, "
                    "seed, n, presence_penalty, frequency_penalty, logprobs, top_logprobs, logit_bias, "
                    "tools, tool_choice, parallel_tool_calls, response_format, user, store, metadata."
                ),
            },
            "store": {"type": "boolean"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Job": {
        "type": "object",
        "required": [
            "id",
            "object",
            "status",
            "engine",
            "created_at",
            "started_at",
            "first_chunk_at",
            "finished_at",
            "finish_reason",
            "usage",
            "error",
            "result",
            "store",
            "metadata",
        ],  # fmt: skip
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "object": {"const": "job"},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "engine": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            },
            "created_at": TIMESTAMP,
            "started_at": TIMESTAMP,
            "first_chunk_at": TIMESTAMP,
            "finished_at": TIMESTAMP,
            "finish_reason": {
                "type": ["string", "null"],
                "description": "stop, length, tool_calls, ...; for a failed job its error code.",
            },
            "usage": {"anyOf": [_ref("UsageData"), {"type": "null"}]},
            "error": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    },
                    {"type": "null"},
                ]
            },
            "result": {"anyOf": [_ref("Result"), {"type": "null"}], "description": "Set once the job ended."},
            "store": {"type": "boolean"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Result": {
        "type": "object",
        "required": ["choices", "usage"],
        "properties": {
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["content", "thinking", "tool_calls", "finish_reason"],
                    "properties": {
                        "content": {"type": "string"},
                        "thinking": {"type": "string"},
                        "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                        "finish_reason": NULLABLE_STRING,
                    },
                },
            },
            "usage": {"anyOf": [_ref("UsageData"), {"type": "null"}]},
        },
    },
    "ToolCall": {
        "type": "object",
        "required": ["id", "name", "arguments"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "arguments": {"type": "string"}},
    },
    "UsageData": {
        "type": "object",
        "required": ["input_tokens", "output_tokens"],
        "properties": {
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "estimated": {"type": "boolean"},
        },
    },
    "Chunk": {
        "type": "object",
        "description": (
            "One piece of output; `seq` is its index in the job's log. data by type: content "
            '{"content"}; tool {"index", "id"?, "name"?, "arguments"?} (fragments of call `index`); '
            'thinking {"thinking"}; usage {"input_tokens", "output_tokens"}; finish {"finish_reason"}; '
            'error {"code", "message"}. Every log ends with exactly one finish or error chunk.'
        ),
        "required": ["seq", "type", "data"],
        "properties": {
            "seq": {"type": "integer", "minimum": 0},
            "type": {"enum": ["content", "tool", "thinking", "usage", "finish", "error"]},
            "data": {"type": "object"},
            "choice": {"type": "integer", "minimum": 1, "description": "Absent for choice 0."},
            "logprobs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ChunkPage": {
        "type": "object",
        "required": ["object", "job_id", "status", "chunks", "last_seq", "done"],
        "properties": {
            "object": {"const": "list"},
            "job_id": {"type": "string"},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "chunks": {"type": "array", "items": _ref("Chunk")},
            "last_seq": {
                "type": "integer",
                "minimum": -1,
                "description": "The seq of the last chunk returned (else `after`): the next call's `after`.",
            },
            "done": {"type": "boolean", "description": "The terminal chunk has been returned."},
        },
    },
    "JobEvent": {
        "description": "One server-sent event of a job's stream; `data` is JSON, by `event`.",
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": ["chunk", "error", "result", "done"]},
            "id": {"type": "string", "description": "The chunk's seq (chunk and error events)."},
            "data": {"type": "string"},
        },
        "allOf": [_event_data(event, schema) for event, schema in EVENT_DATA.items()],
    },
}

EVENTS_DESCRIPTION = """\
Server-sent events, in order:

- `chunk` (`id: <seq>`): a Chunk (content, tool, thinking, usage, finish).
- `error` (`id: <seq>`): the error Chunk that ends a failed or cancelled job.
- `result`: the final Job, once the log has ended.
- `done`: `{}`; the stream closes after it.

Comments (`: keep-alive`) are sent during silences. To resume, reconnect with `Last-Event-ID: <seq>`
(or `?after=<seq>`): the stream goes on with the chunk after it, so nothing is repeated or skipped.
An `error` event without an id is a server-side failure of the stream (an Error envelope); no
`done` follows, so a client reconnects."""

# Jobs the built-in offline engine runs (`make run` registers it as spool-offline).
CREATE_EXAMPLES = {
    "command": {
        "summary": "One user message.",
        "value": {
            "engine": "spool-offline",
            "command": "Tell me of the king.",
            "parameters": {"max_tokens": 8},
        },
    },
    "messages": {
        "summary": "Chat messages, stored with metadata.",
        "value": {
            "model": "spool-offline",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Speak."}],
            "parameters": {"max_completion_tokens": 6, "seed": 3, "logprobs": True, "top_logprobs": 2},
            "store": True,
            "metadata": {"suite": "openapi"},
        },
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Spool native jobs API",
        "version": "1.0.0",
        "description": "LLM generations as asynchronous jobs: create, read, long-poll, stream, cancel.",
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "The secret key."},
            "basic": {"type": "http", "scheme": "basic", "description": "access_key:secret_key."},
        },
    },
    "security": [{"bearer": []}, {"basic": []}],
    "paths": {
        "/v1/jobs": {
            "post": {
                "operationId": "createJob",
                "summary": "Start a job; answers at once.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("JobCreate"), "examples": CREATE_EXAMPLES}
                    },
                },
                "responses": {"202": _json(_ref("Job"), "The job, queued."), **_errors(400, 401, 404)},
            }
        },
        "/v1/jobs/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "Status, timings, usage, and the result once it ended.",
                "parameters": [JOB_ID, _wait("the job to end")],
                "responses": {"200": _json(_ref("Job"), "The job."), **_errors(400, 401, 404)},
            }
        },
        "/v1/jobs/{job_id}/chunks": {
            "get": {
                "operationId": "getJobChunks",
                "summary": "Long-poll for the chunks after sequence number `after`.",
                "parameters": [JOB_ID, AFTER, _wait("the first new chunk")],
                "responses": {
                    "200": _json(_ref("ChunkPage"), "The chunks after `after`."),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "operationId": "streamJobEvents",
                "summary": "Stream the job's chunks, then its result, as server-sent events.",
                "parameters": [
                    JOB_ID,
                    AFTER,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "Resume after this sequence number; wins over `after`.",
                        "schema": {"type": "integer", "minimum": -1},
                    },
                ],
                "responses": {
                    "200": {
                        "description": EVENTS_DESCRIPTION,
                        "content": {"text/event-stream": {"schema": _ref("JobEvent")}},
                    },
                    **_errors(400, 401, 404),
                },
                "x-events": EVENT_DATA,
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel; the output so far is kept. Cancelling an ended job changes nothing.",
                "parameters": [JOB_ID],
                "responses": {
                    "200": _json(_ref("Job"), "The job, cancelled once it stopped."),
                    **_errors(401, 404),
                },
            }
        },
    },
}
