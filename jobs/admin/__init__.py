"""The operator dashboard: engines, API keys, rooms, jobs, stored completions and responses in the admin."""

from __future__ import annotations

from jobs.admin import completions, engines, jobs, responses

__all__ = ["completions", "engines", "jobs", "responses"]
