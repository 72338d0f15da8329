"""The shapes of the native /v1/jobs face, for its checks and its generated document."""

from __future__ import annotations

from rest_framework import serializers

from engine.embeddings import ENCODINGS, MAX_DIMENSIONS
from jobs.faces.common.pagination import ListPage, PageQuery
from jobs.faces.common.serializers import StrictCharField, StrictIntegerField, StrictQueryInteger
from jobs.faces.openai.serializers import STATUSES, EmbeddingInputField
from jobs.placement import CLASSES

# A long-poll (chunks, or a job's end) waits at most this long; proxies often cut at 60 s.
MAX_WAIT_SECONDS = 30.0


class JobCreate(serializers.Serializer):
    """Give engine (or model) and messages (or command)."""

    engine = serializers.CharField(required=False, help_text="An engine id or name.")
    model = serializers.CharField(required=False, help_text="Another name for `engine`.")
    messages = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="OpenAI messages."
    )
    command = serializers.CharField(required=False, help_text="One user message.")
    # A field named as Field.context: the request's system prompt.
    context = serializers.CharField(required=False, help_text="A system prompt put first.")  # type: ignore[assignment]
    parameters = serializers.DictField(
        required=False,
        help_text=(
            "OpenAI parameters: temperature, top_p, max_completion_tokens (or max_tokens), stop, seed, n, "
            "presence_penalty, frequency_penalty, logprobs, top_logprobs, logit_bias, tools, tool_choice, "
            "parallel_tool_calls, response_format, user, store, metadata."
        ),
    )
    store = serializers.BooleanField(required=False)
    metadata = serializers.DictField(child=serializers.CharField(), required=False)
    priority = serializers.ChoiceField(
        choices=list(CLASSES),
        required=False,
        allow_null=True,
        help_text="The class it waits in on an engine with limits: interactive starts before default, "
        "default before batch. Default: default. Never above the API key's max_priority (a higher ask "
        "runs at that, and the job's options keep what was asked as priority_asked).",
    )
    queue_timeout = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Seconds it may wait to start (> 0); then it fails with code expired. Default: "
        "SPOOL_QUEUE_TIMEOUT_SECONDS, or the X-Spool-Queue-Timeout header.",
    )
    run_timeout = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Seconds it may run once started (> 0), at most SPOOL_JOB_MAX_SECONDS. Default: that "
        "setting, or the X-Spool-Run-Timeout header.",
    )


class WaitQuery(serializers.Serializer):
    wait = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=MAX_WAIT_SECONDS,
        default=0,
        help_text="Seconds to wait; answers at once when it happens.",
    )


def _after() -> StrictQueryInteger:
    return StrictQueryInteger(
        required=False, min_value=-1, default=-1,
        help_text="The sequence number of the last chunk seen; -1 (the default) starts at the beginning.",
    )  # fmt: skip


class ChunksQuery(WaitQuery):
    after = _after()


class EventsQuery(serializers.Serializer):
    after = _after()


# This face's wording of a bad query value: one message per parameter, code invalid_value.
_BAD = ("invalid", "min_value", "max_value", "max_string_length")
QUERY_WORDING = {
    **{("wait", code): (f"Invalid 'wait': expected seconds from 0 to {MAX_WAIT_SECONDS:g}.", "invalid_value")
       for code in _BAD},
    **{("after", code): ("Invalid 'after': expected an integer >= -1.", "invalid_value") for code in _BAD},
}  # fmt: skip


class UsageData(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    estimated = serializers.BooleanField(required=False)


class ToolCall(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.CharField()


class ResultChoice(serializers.Serializer):
    content = serializers.CharField(allow_blank=True)
    thinking = serializers.CharField(allow_blank=True)
    tool_calls = ToolCall(many=True)
    finish_reason = serializers.CharField(allow_null=True)


class Result(serializers.Serializer):
    choices = ResultChoice(many=True)
    usage = UsageData(allow_null=True)


class EngineRef(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class JobError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobQueue(serializers.Serializer):
    """Where a queued job of an engine with limits waits."""

    priority = serializers.ChoiceField(choices=list(CLASSES))
    state = serializers.ChoiceField(
        choices=["waiting", "admitted", "running", ""],
        help_text="waiting for a slot; admitted: a slot is its and a worker takes it next; running: a "
        "worker holds it and is starting it; empty: the engine's queue does not hold it (yet).",
    )
    reason = serializers.ChoiceField(
        choices=["engine_full", "rate_limited", "held", ""],
        help_text="Why the engine starts nothing now: every slot busy, its requests or tokens per minute "
        "spent, or held after the upstream answered 429.",
    )
    ahead = serializers.IntegerField(
        allow_null=True, min_value=0, help_text="The owner's jobs of its class that start before it."
    )


class Job(serializers.Serializer):
    id = serializers.UUIDField()
    object = serializers.ChoiceField(choices=["job"])
    status = serializers.ChoiceField(choices=STATUSES)
    engine = EngineRef()
    created_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    first_chunk_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    finish_reason = serializers.CharField(
        allow_null=True, help_text="stop, length, tool_calls, ...; for a failed job its error code."
    )
    usage = UsageData(allow_null=True)
    error = JobError(allow_null=True)
    result = Result(allow_null=True, help_text="Set once the job ended.")
    store = serializers.BooleanField()
    metadata = serializers.DictField(child=serializers.CharField())
    priority = serializers.ChoiceField(
        choices=list(CLASSES),
        allow_null=True,
        help_text="The class it runs at (null: made before priorities)",
    )
    queue = JobQueue(required=False, help_text="While it is queued on an engine with limits.")
    batch = serializers.CharField(
        required=False, help_text="The Batch API batch whose line this job runs (batch_...)."
    )


class JobListQuery(PageQuery):
    batch = serializers.CharField(
        required=False, help_text="Only the jobs of this batch's lines (batch_...)."
    )
    status = serializers.ChoiceField(choices=STATUSES, required=False, help_text="Only jobs in this state.")


class JobList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = Job(many=True)  # type: ignore[assignment]


class Chunk(serializers.Serializer):
    """One piece of output; `seq` is its index in the job's log. Every log ends with exactly one
    finish or error chunk."""

    seq = serializers.IntegerField(min_value=0)
    type = serializers.ChoiceField(choices=["content", "tool", "thinking", "usage", "finish", "error"])
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.DictField()  # type: ignore[assignment]
    choice = serializers.IntegerField(min_value=1, required=False, help_text="Absent for choice 0.")
    logprobs = serializers.ListField(child=serializers.DictField(), required=False)


class ChunkPage(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    job_id = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUSES)
    chunks = Chunk(many=True)
    last_seq = serializers.IntegerField(min_value=-1, help_text="The next call's `after`.")
    done = serializers.BooleanField(help_text="The terminal chunk has been returned.")


class JobEvent(serializers.Serializer):
    """One server-sent event of a job's stream; `data` is JSON, by `event`."""

    event = serializers.ChoiceField(choices=["chunk", "error", "result", "done"])
    id = serializers.CharField(required=False, help_text="The chunk's seq (chunk and error events).")
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.CharField()  # type: ignore[assignment]


class ReadTokenCreate(serializers.Serializer):
    expires_in = StrictIntegerField(
        required=False,
        min_value=1,
        help_text="Seconds the token lives: SPOOL_READ_TOKEN_SECONDS (300) by default, at most "
        "SPOOL_READ_TOKEN_MAX_SECONDS (3600; a longer ask gets that).",
    )


class ReadToken(serializers.Serializer):
    """A token that reads one job: pass it as `?token=` to its events, chunks and status
    (here and on the SEMOSS face), e.g. from a browser's EventSource."""

    object = serializers.ChoiceField(choices=["job.read_token"])
    token = serializers.CharField()
    job_id = serializers.UUIDField()
    expires_at = serializers.IntegerField(help_text="Unix seconds.")


class EmbeddingParameters(serializers.Serializer):
    dimensions = StrictIntegerField(min_value=1, max_value=MAX_DIMENSIONS, required=False)
    user = StrictCharField(required=False, allow_blank=True)
    encoding_format = serializers.ChoiceField(choices=list(ENCODINGS), required=False, default="float")


class EmbeddingsCreate(serializers.Serializer):
    """Give engine (or model) and input: a text, texts, or token id arrays (at most 2048)."""

    engine = serializers.CharField(required=False, help_text="An engine id or name.")
    model = serializers.CharField(required=False, help_text="Another name for `engine`.")
    input = EmbeddingInputField()
    parameters = EmbeddingParameters(
        required=False, help_text="dimensions, user, encoding_format (float or base64) as OpenAI's."
    )


class EmbeddingsUsage(serializers.Serializer):
    input_tokens = serializers.IntegerField(min_value=0)
    estimated = serializers.BooleanField(required=False, help_text="Counted by Spool, not the engine.")


class EmbeddingsAnswer(serializers.Serializer):
    object = serializers.ChoiceField(choices=["embeddings"])
    engine = EngineRef()
    embeddings = serializers.ListField(
        child=serializers.JSONField(), help_text="One per input, in order: numbers, or base64 float32s."
    )
    dimensions = serializers.IntegerField(min_value=1)
    usage = EmbeddingsUsage()
