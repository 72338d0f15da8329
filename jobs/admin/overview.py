"""The admin's landing page: the last 24 hours in four charts and the figures of this moment.
The admin index renders it above the list of models (jobs/adminsite.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from jobs import overview
from jobs.admin.charts import BarChart, LineChart, bar_chart, line_chart

STATUS_CLASSES = {"succeeded": "spool-ok", "failed": "spool-failed", "cancelled": "spool-cancelled"}
HOURS_BETWEEN_LABELS = 3


def _hour_labels(start: datetime, steps: int, step: timedelta) -> list[tuple[int, str]]:
    """A label every few hours of local time, at the step where that hour begins."""
    labels = []
    for index in range(steps):
        at = timezone.localtime(start + index * step)
        if at.minute == 0 and at.hour % HOURS_BETWEEN_LABELS == 0:
            labels.append((index, f"{at:%H:%M}"))
    return labels


def jobs_chart(day: overview.Day) -> LineChart:
    window = day.window
    return line_chart(
        title="Jobs ended per minute, by final status",
        description=f"Jobs that ended in each minute of the last 24 hours: {day.ended:,} in all.",
        x_label=f"time ({timezone.get_current_timezone_name()})",
        y_label="jobs per minute",
        series=[
            (status, STATUS_CLASSES[status], [float(n) for n in counts])
            for status, counts in day.per_minute.items()
        ],
        x_labels=_hour_labels(window.start, window.minutes, timedelta(minutes=1)),
    )


def ttft_chart(day: overview.Day) -> LineChart:
    bins = day.ttft
    return line_chart(
        title="Time to first token of succeeded jobs, p50 and p95",
        description=(
            "From the request to its first chunk, of the jobs that succeeded, per 15 minutes; "
            "read from histogram buckets (within a bucket's width)."
        ),
        x_label=f"time ({timezone.get_current_timezone_name()})",
        y_label="milliseconds",
        series=[
            ("p50", "spool-p50", [b.p50_ms for b in bins]),
            ("p95", "spool-p95", [b.p95_ms for b in bins]),
        ],
        x_labels=_hour_labels(bins[0].start, len(bins), overview.TTFT_BIN) if bins else [],
    )


def tokens_chart(day: overview.Day) -> BarChart:
    return bar_chart(
        title="Tokens per engine",
        description="Input and output tokens of the jobs that ended in the last 24 hours.",
        x_label="tokens",
        rows=[
            (
                t.engine,
                f"{t.input_tokens + t.output_tokens:,}",
                [("input", "spool-input", t.input_tokens), ("output", "spool-output", t.output_tokens)],
            )
            for t in day.tokens
        ],
    )


def errors_chart(day: overview.Day) -> BarChart:
    return bar_chart(
        title="Error rate by code",
        description="Failed and cancelled jobs by code, as a share of every job that ended.",
        x_label="share of ended jobs",
        rows=[
            (e.code, f"{e.share:.2%} ({e.jobs:,})", [(e.status, STATUS_CLASSES[e.status], e.share)])
            for e in day.errors
        ],
    )


def context() -> dict[str, Any]:
    day = overview.last_24_hours()
    return {
        "day": day,
        "live": overview.live(),
        "jobs_chart": jobs_chart(day),
        "ttft_chart": ttft_chart(day),
        "tokens_chart": tokens_chart(day),
        "errors_chart": errors_chart(day),
        "hourly": hourly(day),
    }


def hourly(day: overview.Day) -> list[dict[str, Any]]:
    """The jobs chart's table: 1,440 rows would bury it, so by hour."""
    rows = []
    for hour in range(day.window.minutes // 60):
        span = slice(hour * 60, hour * 60 + 60)
        rows.append(
            {
                "start": day.window.start + timedelta(hours=hour),
                **{status: sum(counts[span]) for status, counts in day.per_minute.items()},
            }
        )
    return rows
