"""The service_tier an OpenAI answer names: OpenAI echoes the tier that served the request, which
may differ from the one asked for. Here that is the class the job ran at (an API key's
max_priority may have lowered it): batch is flex, interactive asked for as priority is
priority, anything else is default."""

from __future__ import annotations

from typing import Any

from jobs.placement import BATCH, INTERACTIVE, SERVICE_TIERS


def served_tier(options: dict[str, Any]) -> str | None:
    """None when the request named no service_tier (OpenAI then leaves it out too)."""
    asked = options.get("service_tier")
    if not asked:
        return None
    runs_at = options.get("priority")
    if runs_at is None:  # a job from before priorities: what it asked for
        return str(asked)
    if runs_at == BATCH:
        return "flex"
    if runs_at == INTERACTIVE and SERVICE_TIERS.get(asked) == INTERACTIVE:
        return "priority"
    return "default"
