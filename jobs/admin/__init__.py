"""The operator dashboard: engines, API keys, rooms, jobs, stored completions, responses,
webhooks, and Batch API batches and files in the admin."""

from __future__ import annotations

from jobs.admin import batches, completions, engines, jobs, responses, webhooks

__all__ = ["batches", "completions", "engines", "jobs", "responses", "webhooks"]
