"""The operator dashboard: engines, API keys, rooms, jobs and stored completions in the admin."""

from __future__ import annotations

from jobs.admin import completions, engines, jobs

__all__ = ["completions", "engines", "jobs"]
