"""The ids the API shows: "file-" and "batch_" and "batch_req_" before a row's hex, as OpenAI's."""

from __future__ import annotations

from jobs.paging import pk_of, public_id

__all__ = ["BATCH_PREFIX", "FILE_PREFIX", "LINE_PREFIX", "pk_of", "public_id"]

FILE_PREFIX = "file-"
BATCH_PREFIX = "batch_"
LINE_PREFIX = "batch_req_"
