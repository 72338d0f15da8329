"""The shapes of /v1/responses for the generated document (drf-spectacular), and the query of a
retrieve (checked strictly)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from jobs.faces.common.pagination import ListPage, PageQuery
from jobs.faces.common.schema import errors, idempotency_headers
from jobs.faces.common.serializers import StrictBooleanField, StrictFloatField, StrictQueryInteger
from jobs.faces.openai.responses.create import ResponsesFace
from jobs.faces.openai.serializers import SERVICE_TIERS

STATUSES = ("queued", "in_progress", "completed", "failed", "cancelled", "incomplete")
ID = r"^resp_[0-9a-f]{32}$"


class RetrieveQuery(serializers.Serializer):
    stream = serializers.BooleanField(required=False, help_text="Stream the response's events.")
    starting_after = StrictQueryInteger(
        required=False, min_value=-1, help_text="With stream: the events after this sequence number."
    )
    include = serializers.CharField(required=False, help_text="Accepted; nothing extra to include.")
    include_obfuscation = serializers.BooleanField(
        required=False, help_text="Accepted; events are not padded."
    )


class ResponseCreate(ResponsesFace):
    """POST /v1/responses. `input` is a string or an array of input items (messages with text
    parts, function_call and function_call_output items); `tools` are function tools;
    `text.format` is honoured where the engine can (json_object, json_schema upstream)."""

    input = serializers.JSONField(help_text="A string, or an array of input items.")
    max_output_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    temperature = StrictFloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = StrictFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    tools = serializers.ListField(child=serializers.JSONField(), required=False, allow_null=True)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True)
    text = serializers.JSONField(required=False, allow_null=True, help_text='{"format": {"type": ...}}')
    metadata = serializers.DictField(child=serializers.CharField(), required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    safety_identifier = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class ResponseErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ResponseIncompleteDetails(serializers.Serializer):
    reason = serializers.ChoiceField(choices=["max_output_tokens"])


class ResponseUsage(serializers.Serializer):
    input_tokens = serializers.IntegerField(min_value=0)
    input_tokens_details = serializers.DictField()
    output_tokens = serializers.IntegerField(min_value=0)
    output_tokens_details = serializers.DictField()
    total_tokens = serializers.IntegerField(min_value=0)


class ResponseObject(serializers.Serializer):
    id = serializers.RegexField(ID)
    object = serializers.ChoiceField(choices=["response"])
    created_at = serializers.IntegerField(help_text="Unix seconds.")
    model = serializers.CharField(help_text="The engine's name.")
    status = serializers.ChoiceField(choices=STATUSES)
    error = ResponseErrorDetail(allow_null=True)
    incomplete_details = ResponseIncompleteDetails(allow_null=True)
    output = serializers.ListField(
        child=serializers.DictField(), help_text="message items (output_text parts) and function_call items."
    )
    usage = ResponseUsage(allow_null=True)
    background = serializers.BooleanField()
    instructions = serializers.CharField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    parallel_tool_calls = serializers.BooleanField()
    previous_response_id = serializers.CharField(allow_null=True)
    safety_identifier = serializers.CharField(allow_null=True)
    store = serializers.BooleanField()
    temperature = serializers.FloatField(allow_null=True)
    text = serializers.DictField()
    tool_choice = serializers.JSONField()
    tools = serializers.ListField(child=serializers.DictField())
    top_p = serializers.FloatField(allow_null=True)
    truncation = serializers.CharField()
    user = serializers.CharField(allow_null=True)
    service_tier = serializers.ChoiceField(
        choices=list(SERVICE_TIERS),
        required=False,
        help_text="When the request named one: the tier it ran at (flex: batch, priority: interactive).",
    )


class ResponseDeleted(serializers.Serializer):
    id = serializers.RegexField(ID)
    object = serializers.ChoiceField(choices=["response"])
    deleted = serializers.BooleanField()


class InputItemList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]


class ResponseEvent(serializers.Serializer):
    """One server-sent event: `event` is its type, `data` the event as JSON with its
    `sequence_number`."""

    event = serializers.CharField()
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.CharField()  # type: ignore[assignment]


EVENTS = (
    "With stream: true, server-sent events with `event:` and `data:` lines: response.created "
    "(response.queued in the background), response.in_progress, the output items' events, then "
    "response.completed, response.incomplete or response.failed. Each carries its "
    "`sequence_number`, a pure function of the job's chunk log: a retrieve with stream=true and "
    "starting_after=N resumes with N+1. `: keep-alive` comments come during silences."
)
OFFLINE = "spool-offline"
JOB_ID_HEADER = OpenApiParameter(
    "X-Spool-Job-Id", OpenApiTypes.UUID, OpenApiParameter.HEADER, response=[200], required=True,
    description="The job behind the response.",
)  # fmt: skip
ANSWERS = {
    (200, "application/json"): OpenApiResponse(ResponseObject, description="The response."),
    (200, "text/event-stream"): OpenApiResponse(ResponseEvent, description=EVENTS),
}

create_schema = extend_schema(
    operation_id="createResponse",
    summary="Run a response as one job: wait for it, stream it, or start it in the background.",
    request=ResponseCreate,
    responses={**ANSWERS, **errors(404, 409, 413, 504)},
    parameters=[JOB_ID_HEADER, *idempotency_headers()],
    examples=[
        OpenApiExample(
            "plain", value={"model": OFFLINE, "input": "Tell me of the king.", "max_output_tokens": 8},
            request_only=True,
        ),
        OpenApiExample(
            "background",
            value={"model": OFFLINE, "input": "Speak.", "background": True, "max_output_tokens": 8},
            request_only=True,
        ),
    ],
)  # fmt: skip
retrieve_schema = extend_schema(
    operation_id="getResponse",
    summary="A response; with stream=true its events (after starting_after), live or archived.",
    parameters=[RetrieveQuery, JOB_ID_HEADER],
    responses={**ANSWERS, **errors(404)},
)
delete_schema = extend_schema(
    operation_id="deleteResponse",
    summary="Delete a stored response (a running one is cancelled first).",
    responses={200: ResponseDeleted, **errors(404)},
)
cancel_schema = extend_schema(
    operation_id="cancelResponse",
    summary="Stop a running response; its output so far is kept. A finished one answers as it is.",
    request=None,
    parameters=[JOB_ID_HEADER],
    responses={200: ResponseObject, **errors(404)},
)
input_items_schema = extend_schema(
    operation_id="listInputItems",
    summary="The input items a response was asked with, newest first by default.",
    parameters=[PageQuery],
    responses={200: InputItemList, **errors(404)},
)


# What a response's id opens: OpenAPI links from every answer that carries one, so clients and
# schemathesis's stateful phase follow a response to the operations on it.
LINKED = ("getResponse", "cancelResponse", "listInputItems", "deleteResponse")
LINKED_FROM = ("createResponse", "getResponse", "cancelResponse")


def link_operations(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the links above (drf-spectacular has no per-response
    links of its own)."""
    links = {
        name: {"operationId": name, "parameters": {"response_id": "$response.body#/id"}} for name in LINKED
    }
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") in LINKED_FROM:
                operation["responses"]["200"]["links"] = links
    return result
