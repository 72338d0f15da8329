"""The shapes of the OpenAI face: request bodies and query parameters (checked strictly, OpenAI's
wording) and the objects it answers with; drf-spectacular documents the face from these."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engine.embeddings import ENCODINGS, MAX_DIMENSIONS, MAX_INPUTS
from jobs import completions, placement
from jobs.faces.common.errors import FaceError
from jobs.faces.common.pagination import ListPage
from jobs.faces.common.params import MAX_METADATA_VALUE, GenerationParams
from jobs.faces.common.serializers import (
    SharedFields,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from jobs.faces.openai.messages import check_messages

# What OpenAI's service_tier may be: each a priority class here, or the face's own default.
SERVICE_TIERS = tuple(placement.SERVICE_TIERS)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _metadata(**kwargs: Any) -> serializers.DictField:
    kwargs.setdefault(
        "help_text", "Up to 16 string pairs (keys up to 64 characters), kept with a stored completion."
    )
    return serializers.DictField(child=serializers.CharField(max_length=MAX_METADATA_VALUE), **kwargs)


# ---- requests ---------------------------------------------------------------------------------


def service_tier_field(default: str = "interactive") -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=SERVICE_TIERS,
        required=False,
        allow_null=True,
        help_text=f"The job's priority class: priority is interactive, flex is batch; auto, default and "
        f"scale leave this face's default ({default}). Never above the API key's max_priority.",
    )


class StreamOptions(serializers.Serializer):
    expected = "an object"
    include_usage = StrictBooleanField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if name not in self.fields:
                    raise FaceError(
                        f"Unrecognized request argument supplied: stream_options.{name}",
                        param=f"stream_options.{name}",
                        code="unknown_parameter",
                    )
        return super().to_internal_value(data)


class MessagesField(serializers.ListField):
    """OpenAI chat messages, each checked by the rules of its role (jobs.faces.openai.messages)."""

    expected = "an array"

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        messages = super().to_internal_value(data)
        check_messages(data)
        return messages


class ChatFace(SharedFields):
    """The parameters only the OpenAI face knows, checked before the shared generation ones."""

    model = StrictCharField()
    messages = MessagesField(child=serializers.JSONField(), min_length=1)
    stream_options = StreamOptions(required=False, allow_null=True)
    service_tier = service_tier_field()
    modalities = serializers.ListField(
        child=serializers.ChoiceField(choices=["text", "audio"]), required=False, allow_null=True
    )


class ChatCompletionCreate(ChatFace, GenerationParams):
    """POST /v1/chat/completions: the face's own fields and the shared generation parameters,
    the same serializers the view checks a body with. Messages follow OpenAI's schema (roles
    system, developer, user, assistant, tool; a tool message answers a preceding assistant
    message with tool_calls). Metadata needs store: true."""

    audio = serializers.JSONField(required=False, allow_null=True, help_text="Not supported: text only.")


class PromptField(serializers.ListField):
    """A string or a non-empty array of strings; each is continued on its own."""

    expected = "a string or an array of strings"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=StrictCharField(allow_blank=True), min_length=1, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [data]
        if (
            isinstance(data, list)
            and data
            and all(
                isinstance(item, int) and not isinstance(item, bool) or isinstance(item, list)
                for item in data
            )
        ):
            raise FaceError(
                "Prompts as token ids are not supported: each engine has its own tokenizer. Send the text.",
                param="prompt",
                code="unsupported_value",
            )
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


class TextFace(SharedFields):
    """The parameters only the legacy completions API knows, checked before the shared ones."""

    model = StrictCharField()
    prompt = PromptField(help_text="A string or an array of strings (not token ids).")
    suffix = StrictCharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="Text after the completion, where the engine can fill in (upstream engines pass it on).",
    )  # fmt: skip
    echo = StrictBooleanField(required=False, allow_null=True, help_text="Put the prompt before each text.")
    logprobs = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=5,
        help_text="The sampled tokens' log-probabilities and this many likeliest alternatives.",
    )  # fmt: skip
    best_of = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=20,
        help_text="Only equal to n: every choice generated is returned.",
    )  # fmt: skip
    stream_options = StreamOptions(required=False, allow_null=True)
    service_tier = service_tier_field()


# logprobs is the legacy integer here, the chat boolean there: TextFace's, first in the MRO, wins.
class CompletionCreate(TextFace, GenerationParams):  # type: ignore[misc]
    """POST /v1/completions: the legacy API's own fields and the sampling parameters it shares
    with chat completions, the same serializers the view checks a body with. max_tokens defaults
    to 16, as OpenAI's does."""

    # Chat-only parameters of the shared serializer: not part of this API.
    CHAT_ONLY = ("max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
                 "response_format", "safety_identifier", "store", "metadata")  # fmt: skip

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in self.CHAT_ONLY:
            fields.pop(name, None)
        return fields


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
    service_tier = serializers.ChoiceField(
        choices=SERVICE_TIERS,
        required=False,
        help_text="When the request named one: the tier it ran at (flex: batch, priority: interactive, "
        "default: anything else).",
    )


class ChatCompletion(CompletionHead):
    object = serializers.ChoiceField(choices=["chat.completion"])
    choices = Choice(many=True)
    usage = Usage(allow_null=True)


class StoredChatCompletion(ChatCompletion):
    metadata = _metadata()


class CancelledChatCompletion(ChatCompletion):
    status = serializers.ChoiceField(choices=STATUSES)


class ChatCompletionList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = StoredChatCompletion(many=True)  # type: ignore[assignment]


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


class StoredMessageList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = StoredMessage(many=True)  # type: ignore[assignment]


class Model(serializers.Serializer):
    id = serializers.CharField(help_text="The engine's name.")
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField()
    owned_by = serializers.ChoiceField(choices=["spool"])


class ModelList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = Model(many=True)  # type: ignore[assignment]


class TextLogprobs(serializers.Serializer):
    tokens = serializers.ListField(child=serializers.CharField())
    token_logprobs = serializers.ListField(
        child=serializers.FloatField(max_value=0, allow_null=True),
        help_text="null for an echoed prompt's first token: nothing precedes it.",
    )
    top_logprobs = serializers.ListField(
        child=serializers.DictField(child=serializers.FloatField(max_value=0), allow_null=True),
        help_text="Per token, its likeliest alternatives: token -> log-probability.",
    )
    text_offset = serializers.ListField(
        child=serializers.IntegerField(min_value=0), help_text="Where each token starts in the text."
    )


class TextChoice(serializers.Serializer):
    text = serializers.CharField(allow_blank=True)
    index = serializers.IntegerField(min_value=0, help_text="prompt index * n + choice")
    logprobs = TextLogprobs(allow_null=True)
    finish_reason = serializers.CharField(
        allow_null=True, help_text="stop, length; cancelled or an error code."
    )


class TextCompletion(serializers.Serializer):
    id = serializers.RegexField(r"^cmpl-[0-9a-f]{32}$")
    object = serializers.ChoiceField(choices=["text_completion"])
    created = serializers.IntegerField(help_text="Unix seconds.")
    model = serializers.CharField(help_text="The engine's name.")
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = TextChoice(many=True)
    usage = Usage(allow_null=True)


class CancelledTextCompletion(TextCompletion):
    status = serializers.ChoiceField(choices=STATUSES)


class ChatCompletionEvent(serializers.Serializer):
    """One data-only server-sent event: `data` is a ChatCompletionChunk as JSON, or an Error
    envelope when the generation fails mid-stream; the last is `[DONE]`."""

    event = serializers.ChoiceField(choices=["message"], required=False)
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.CharField()  # type: ignore[assignment]


class TextCompletionEvent(ChatCompletionEvent):
    """One data-only server-sent event: `data` is a text_completion chunk as JSON, or an Error
    envelope when the generation fails mid-stream; the last is `[DONE]`."""


# ---- embeddings -------------------------------------------------------------------------------

_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "description": "One text."},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
             "maxItems": MAX_INPUTS, "description": "Texts."},
            {**_TOKENS, "description": "One text as the engine's token ids."},
            {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": MAX_INPUTS,
             "description": "Texts as token id arrays."},
        ]
    }
)  # fmt: skip
class EmbeddingInputField(serializers.Field):
    """OpenAI's `input`, as a list of inputs (each a text or a token array). Only the shape is
    checked here; engine.embeddings.check words what is empty or too many."""

    expected = "a string, an array of strings, an array of integers or an array of integer arrays"
    default_error_messages = {"invalid": f"expected {expected}"}

    def to_internal_value(self, data: Any) -> list[str | list[int]]:
        if isinstance(data, str):
            return [data]
        if isinstance(data, list):
            if all(isinstance(item, str) for item in data):
                return list(data)
            if all(_is_token(item) for item in data):
                return [list(data)]
            if all(isinstance(item, list) and all(_is_token(t) for t in item) for item in data):
                return [list(item) for item in data]
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EmbeddingCreate(serializers.Serializer):
    """POST /v1/embeddings, as OpenAI's: at most 2048 inputs, none empty."""

    model = StrictCharField(help_text="An engine's name or id.")
    input = EmbeddingInputField()
    encoding_format = serializers.ChoiceField(choices=list(ENCODINGS), required=False, default="float")
    dimensions = StrictIntegerField(
        min_value=1, max_value=MAX_DIMENSIONS, required=False,
        help_text="The width of each vector (offline engine: 1024 unless set; an upstream: its model's).",
    )  # fmt: skip
    user = StrictCharField(required=False, allow_blank=True, help_text="Passed on to an upstream.")


class Embedding(serializers.Serializer):
    object = serializers.ChoiceField(choices=["embedding"])
    index = serializers.IntegerField(min_value=0)
    embedding = serializers.JSONField(
        help_text="Numbers, or with encoding_format base64 a string of float32s."
    )


class EmbeddingUsage(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)


class EmbeddingList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = Embedding(many=True)  # type: ignore[assignment]
    model = serializers.CharField(help_text="The engine's name.")
    usage = EmbeddingUsage()
