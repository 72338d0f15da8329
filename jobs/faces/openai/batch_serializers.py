"""The shapes of /v1/files and /v1/batches, as OpenAI's API has them (so its SDK's `files` and
`batches` work), for the generated document and for checking requests."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.faces.common.pagination import ListPage, PageQuery
from jobs.faces.common.serializers import StrictCharField, StrictIntegerField, StrictQueryInteger

PURPOSES = ["batch", "batch_output"]
STATUSES = ["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
            "cancelled"]  # fmt: skip
MAX_METADATA_KEYS = 16


# ---- requests ---------------------------------------------------------------------------------


class ExpiresAfter(serializers.Serializer):
    """OpenAI's expiration policy: this many seconds after the file is made."""

    anchor = serializers.ChoiceField(choices=["created_at"])
    seconds = StrictIntegerField(min_value=3600, max_value=2_592_000, help_text="1 hour to 30 days.")


class FileExpiry(serializers.Serializer):
    """FileCreate's policy alone, checked once the multipart form has been read."""

    expires_after = ExpiresAfter()


class FileCreate(serializers.Serializer):
    """multipart/form-data."""

    file = serializers.FileField(help_text="JSON Lines, one request per line; at most 200 MB.")
    purpose = serializers.ChoiceField(choices=["batch"])
    expires_after = ExpiresAfter(
        required=False,
        help_text="Sent as the fields expires_after[anchor] and expires_after[seconds]; by default a "
        "file expires after SPOOL_BATCH_FILE_SECONDS (30 days).",
    )


class FileListQuery(PageQuery):
    purpose = serializers.CharField(required=False, allow_blank=True)


class BatchCreate(serializers.Serializer):
    input_file_id = StrictCharField(help_text="A file uploaded with purpose 'batch'.")
    endpoint = StrictCharField(
        help_text="Every line's url: /v1/chat/completions, /v1/completions, /v1/responses or /v1/embeddings."
    )
    completion_window = serializers.ChoiceField(choices=["24h"])
    metadata = serializers.DictField(
        child=StrictCharField(max_length=512), required=False, allow_null=True, allow_empty=True
    )
    output_expires_after = ExpiresAfter(
        required=False, help_text="When the output and error files expire (default: 30 days)."
    )


class BatchListQuery(serializers.Serializer):
    after = serializers.CharField(required=False, allow_blank=True)
    limit = StrictQueryInteger(required=False, min_value=1, max_value=100, help_text="Batches per page.")


# ---- answers ----------------------------------------------------------------------------------


class File(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["file"])
    bytes = serializers.IntegerField()
    created_at = serializers.IntegerField()
    expires_at = serializers.IntegerField(allow_null=True)
    filename = serializers.CharField()
    purpose = serializers.ChoiceField(choices=PURPOSES)
    status = serializers.ChoiceField(choices=["uploaded", "processed", "error"])
    status_details = serializers.CharField(allow_null=True)


class FileList(ListPage):
    data = File(many=True)  # type: ignore[assignment]


class FileDeleted(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["file"])
    deleted = serializers.BooleanField()


class BatchError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    line = serializers.IntegerField(allow_null=True)


class BatchErrors(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = BatchError(many=True)  # type: ignore[assignment]


class RequestCounts(serializers.Serializer):
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()


class Batch(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["batch"])
    endpoint = serializers.CharField()
    # A field, despite the name: the serializer metaclass takes declared fields out of the class.
    errors = BatchErrors(allow_null=True)  # type: ignore[assignment]
    input_file_id = serializers.CharField()
    completion_window = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUSES)
    output_file_id = serializers.CharField(allow_null=True)
    error_file_id = serializers.CharField(allow_null=True)
    created_at = serializers.IntegerField()
    in_progress_at = serializers.IntegerField(allow_null=True)
    expires_at = serializers.IntegerField(allow_null=True)
    finalizing_at = serializers.IntegerField(allow_null=True)
    completed_at = serializers.IntegerField(allow_null=True)
    failed_at = serializers.IntegerField(allow_null=True)
    expired_at = serializers.IntegerField(allow_null=True)
    cancelling_at = serializers.IntegerField(allow_null=True)
    cancelled_at = serializers.IntegerField(allow_null=True)
    request_counts = RequestCounts()
    metadata = serializers.DictField(child=serializers.CharField(), allow_null=True)


class BatchList(ListPage):
    data = Batch(many=True)  # type: ignore[assignment]


# What a file's and a batch's ids open: OpenAPI links from the answers that carry them, so
# clients and schemathesis's stateful phase follow an upload to its batch and its content.
LINKS = {
    "file_id": (("createFile", "retrieveFile"), ("retrieveFile", "downloadFile", "deleteFile")),
    "batch_id": (("createBatch", "retrieveBatch", "cancelBatch"), ("retrieveBatch", "cancelBatch")),
}


def link_operations(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the links above, and an upload's id to a batch's
    input_file_id."""
    links: dict[str, dict[str, Any]] = {}
    for param, (sources, targets) in LINKS.items():
        for source in sources:
            links[source] = {
                target: {"operationId": target, "parameters": {param: "$response.body#/id"}}
                for target in targets
            }
    links["createFile"]["createBatch"] = {
        "operationId": "createBatch",
        "requestBody": {
            "input_file_id": "$response.body#/id",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    }
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") in links:
                operation["responses"]["200"].setdefault("links", {}).update(links[operation["operationId"]])
    return result
