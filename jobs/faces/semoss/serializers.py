"""The shapes of the SEMOSS face, for its generated document. Form values are text and keep
their own rules (the pixel parser reads `expression`), so these describe, and do not coerce."""

from __future__ import annotations

from rest_framework import serializers

STATUSES = ["Submitted", "InProgress", "Streaming", "ProgressComplete", "Canceled", "Error", "UnknownJob"]


class PixelForm(serializers.Serializer):
    expression = serializers.CharField(
        help_text=(
            'A pixel: `META | true`, `LLM(engine="<id>", command=...)`, '
            '`Embeddings(engine="<id>", values=[...])`, ...'
        )
    )
    insightId = serializers.CharField(required=False, help_text="`new` (or absent) for a new insight.")  # noqa: N815


class JobForm(serializers.Serializer):
    jobId = serializers.CharField(help_text="What runPixelAsync answered.")  # noqa: N815


class ResultForm(JobForm):
    insightId = serializers.CharField(required=False)  # noqa: N815


class StreamingForm(JobForm):
    cursor = serializers.IntegerField(
        required=False, min_value=0, help_text="The cursor of the last answer: re-read from there."
    )


class ConfigAnswer(serializers.Serializer):
    csrf = serializers.BooleanField()
    version = serializers.CharField()
    loginDetails = serializers.DictField(child=serializers.CharField(), required=False)  # noqa: N815


class LoggedOut(serializers.Serializer):
    success = serializers.BooleanField()


class PixelOutput(serializers.Serializer):
    pixelExpression = serializers.CharField(allow_blank=True)  # noqa: N815
    output = serializers.JSONField(help_text="The reactor's output; the message when operationType is ERROR.")
    operationType = serializers.ListField(child=serializers.CharField())  # noqa: N815
    isMeta = serializers.BooleanField()  # noqa: N815


class PixelReturn(serializers.Serializer):
    insightID = serializers.CharField(allow_blank=True)  # noqa: N815
    pixelReturn = PixelOutput(many=True)  # noqa: N815


class JobStarted(serializers.Serializer):
    jobId = serializers.CharField()  # noqa: N815


class JobRefused(serializers.Serializer):
    """A refused start: the message, and for a pixel that does not run, its ERROR pixelReturn."""

    errorMessage = serializers.CharField()  # noqa: N815
    jobId = serializers.CharField(allow_null=True, required=False)  # noqa: N815
    insightID = serializers.CharField(allow_blank=True, required=False)  # noqa: N815
    pixelReturn = PixelOutput(many=True, required=False)  # noqa: N815


class StreamMessage(serializers.Serializer):
    stream_type = serializers.ChoiceField(choices=["content", "tool", "thinking", "usage"])
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = serializers.DictField()  # type: ignore[assignment]


class Streaming(serializers.Serializer):
    message = StreamMessage(many=True)
    status = serializers.ChoiceField(choices=STATUSES)
    cursor = serializers.IntegerField(min_value=0, required=False, help_text="Absent for an unknown job.")
    errorMessage = serializers.CharField(required=False)  # noqa: N815


class PartialText(serializers.Serializer):
    new = serializers.CharField(allow_blank=True)
    total = serializers.CharField(allow_blank=True)


class PartialPoll(serializers.Serializer):
    message = PartialText()
    status = serializers.ChoiceField(choices=STATUSES)


class PixelResult(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATUSES)
    message = serializers.ListField(child=serializers.JSONField(), required=False)
    insightID = serializers.CharField(allow_blank=True, required=False)  # noqa: N815
    pixelReturn = PixelOutput(many=True, required=False)  # noqa: N815


class JobStatus(serializers.Serializer):
    jobId = serializers.CharField(required=False)  # noqa: N815
    status = serializers.ChoiceField(choices=STATUSES)
