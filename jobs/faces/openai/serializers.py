"""The shapes of the OpenAI face: request bodies and query parameters (checked strictly, OpenAI's
wording) and the objects it answers with; drf-spectacular documents the face from these."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from jobs import completions
from jobs.faces.common.params import MAX_METADATA_VALUE, MAX_N, MAX_STOP, MAX_TOP_LOGPROBS
from jobs.faces.common.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)

SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
TOOL_CHOICES = ("none", "auto", "required")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _metadata(**kwargs: object) -> serializers.DictField:
    kwargs.setdefault(
        "help_text", "Up to 16 string pairs (keys up to 64 characters), kept with a stored completion."
    )
    return serializers.DictField(child=serializers.CharField(max_length=MAX_METADATA_VALUE), **kwargs)


# ---- requests ---------------------------------------------------------------------------------


class StreamOptions(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, allow_null=True)


class ChatCompletionCreate(serializers.Serializer):
    """POST /v1/chat/completions. Messages follow OpenAI's schema (roles system, developer, user,
    assistant, tool; a tool message answers a preceding assistant message with tool_calls)."""

    model = StrictCharField(help_text="An engine's name or id.")
    messages = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=settings.SPOOL["MAX_MESSAGES"]
    )
    temperature = StrictFloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = StrictFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    n = StrictIntegerField(min_value=1, max_value=MAX_N, required=False, allow_null=True)
    stop = serializers.JSONField(required=False, allow_null=True, help_text=f"A string or up to {MAX_STOP}.")
    max_completion_tokens = StrictIntegerField(
        min_value=1, max_value=settings.SPOOL["MAX_OUTPUT_TOKENS"], required=False, allow_null=True
    )
    max_tokens = StrictIntegerField(
        min_value=1, max_value=settings.SPOOL["MAX_OUTPUT_TOKENS"], required=False, allow_null=True,
        help_text="Give one of max_completion_tokens and max_tokens.",
    )  # fmt: skip
    presence_penalty = StrictFloatField(min_value=-2, max_value=2, required=False, allow_null=True)
    frequency_penalty = StrictFloatField(min_value=-2, max_value=2, required=False, allow_null=True)
    seed = StrictIntegerField(min_value=-(2**63), max_value=2**63 - 1, required=False, allow_null=True)
    logit_bias = serializers.DictField(
        child=StrictFloatField(min_value=-100, max_value=100), required=False, allow_null=True,
        help_text="Token id -> bias, -100 to 100.",
    )  # fmt: skip
    logprobs = StrictBooleanField(required=False, allow_null=True)
    top_logprobs = StrictIntegerField(
        min_value=0, max_value=MAX_TOP_LOGPROBS, required=False, allow_null=True
    )
    tools = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    tool_choice = serializers.JSONField(required=False, allow_null=True, help_text="Only with tools.")
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True, help_text="Only with tools.")
    response_format = serializers.DictField(required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True)
    stream_options = StreamOptions(required=False, allow_null=True, help_text="Only with stream: true.")
    store = StrictBooleanField(required=False, allow_null=True)
    metadata = _metadata(required=False, allow_null=True)
    user = StrictCharField(required=False, allow_null=True)
    safety_identifier = StrictCharField(required=False, allow_null=True)
    service_tier = serializers.ChoiceField(choices=SERVICE_TIERS, required=False, allow_null=True)
    modalities = serializers.ListField(
        child=serializers.ChoiceField(choices=["text"]), required=False, allow_null=True,
        help_text="Spool's engines write text only; audio is refused.",
    )  # fmt: skip


class CompletionUpdate(serializers.Serializer):
    metadata = _metadata(allow_null=True, help_text="Replaces it; null clears it.")


class ListQuery(serializers.Serializer):
    model = serializers.CharField(required=False)
    after = serializers.CharField(required=False, help_text="The id of the last item of the previous page.")
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=completions.MAX_LIMIT, default=completions.DEFAULT_LIMIT
    )
    order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="asc")


# ---- answers ----------------------------------------------------------------------------------


class Usage(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    completion_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)


class TopLogprob(serializers.Serializer):
    token = serializers.CharField()
    logprob = serializers.FloatField(max_value=0)
    bytes = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=255), allow_null=True)


class TokenLogprob(TopLogprob):
    top_logprobs = TopLogprob(many=True)


class Logprobs(serializers.Serializer):
    content = TokenLogprob(many=True, allow_null=True)
    refusal = TokenLogprob(many=True, allow_null=True)


class FunctionCall(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.CharField()


class ToolCallOut(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionCall()


class AssistantMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"])
    content = serializers.CharField(allow_null=True)
    refusal = serializers.CharField(allow_null=True)
    tool_calls = ToolCallOut(many=True, required=False)
    reasoning_content = serializers.CharField(required=False, help_text="Thinking.")


class Choice(serializers.Serializer):
    index = serializers.IntegerField(min_value=0)
    message = AssistantMessage()
    logprobs = Logprobs(allow_null=True)
    finish_reason = serializers.CharField(
        allow_null=True, help_text="stop, length, tool_calls; cancelled or an error code."
    )


class CompletionHead(serializers.Serializer):
    id = serializers.RegexField(r"^chatcmpl-[0-9a-f]{32}$")
    created = serializers.IntegerField(help_text="Unix seconds.")
    model = serializers.CharField(help_text="The engine's name.")
    system_fingerprint = serializers.CharField(allow_null=True)
    service_tier = serializers.CharField(required=False, help_text="Echoed from the request when given.")


class ChatCompletion(CompletionHead):
    object = serializers.ChoiceField(choices=["chat.completion"])
    choices = Choice(many=True)
    usage = Usage(allow_null=True)


class StoredChatCompletion(ChatCompletion):
    metadata = _metadata()


class CancelledChatCompletion(ChatCompletion):
    status = serializers.ChoiceField(choices=STATUSES)


class ChatCompletionList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = StoredChatCompletion(many=True)
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class ChatCompletionDeleted(serializers.Serializer):
    object = serializers.ChoiceField(choices=["chat.completion.deleted"])
    id = serializers.CharField()
    deleted = serializers.BooleanField()


class StoredMessage(serializers.Serializer):
    id = serializers.CharField(help_text="<completion id>-<index>")
    role = serializers.CharField()
    content = serializers.JSONField(help_text="For array content, its text parts joined (or null).")
    name = serializers.JSONField(help_text="As sent; null when absent.")
    content_parts = serializers.ListField(child=serializers.JSONField(), allow_null=True)
    tool_calls = serializers.JSONField(required=False)
    tool_call_id = serializers.JSONField(required=False)
    refusal = serializers.JSONField(required=False)


class StoredMessageList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = StoredMessage(many=True)
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class Model(serializers.Serializer):
    id = serializers.CharField(help_text="The engine's name.")
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField()
    owned_by = serializers.ChoiceField(choices=["spool"])


class ModelList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = Model(many=True)


class ChatCompletionEvent(serializers.Serializer):
    """One data-only server-sent event: `data` is a ChatCompletionChunk as JSON, or an Error
    envelope when the generation fails mid-stream; the last is `[DONE]`."""

    event = serializers.ChoiceField(choices=["message"], required=False)
    data = serializers.CharField()
