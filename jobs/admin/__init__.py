"""The operator dashboard: engines, API keys, rooms, jobs, stored completions, responses and
webhooks in the admin."""

from __future__ import annotations

from jobs.admin import completions, engines, jobs, responses, webhooks

__all__ = ["completions", "engines", "jobs", "responses", "webhooks"]
