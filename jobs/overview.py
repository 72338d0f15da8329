"""What the admin overview shows: the last 24 hours from the per-minute rollup (jobs/rollup.py),
and the figures of this moment from Postgres, the broker and the processes' metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from jobs import metrics, rollup
from jobs.models import Job

WINDOW = timedelta(hours=24)
# Time to first token is read per bin: a minute's few jobs make a jumpy p95.
TTFT_BIN = timedelta(minutes=15)
# Bins start on the quarter hour (00, 15, 30, 45), so the axis can label whole hours.
BIN_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
ENDED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


@dataclass(frozen=True)
class Window:
    start: datetime  # the first minute shown
    end: datetime  # one past the last minute shown (the current minute's end)

    @classmethod
    def last_24_hours(cls, now: datetime | None = None) -> Window:
        end = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return cls(end - WINDOW, end)

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) / timedelta(minutes=1))


@dataclass(frozen=True)
class TtftBin:
    start: datetime
    jobs: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class EngineTokens:
    engine: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ErrorCode:
    status: str
    code: str
    jobs: int
    share: float  # of every job that ended in the window


@dataclass(frozen=True)
class Day:
    window: Window
    per_minute: dict[str, list[int]]  # final status -> jobs ended in each minute of the window
    ttft: list[TtftBin]
    tokens: list[EngineTokens]
    errors: list[ErrorCode]
    ended: int


def jobs_per_minute(window: Window) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {status: [0] * window.minutes for status in ENDED}
    with connection.cursor() as cursor:
        # Minutes as offsets into the window, one array pair per status: ~4,000 timestamps
        # parsed into datetimes cost more than the query itself.
        cursor.execute(
            f"""SELECT status, array_agg(offset_minutes), array_agg(jobs) FROM (
                    SELECT status, (extract(epoch FROM minute - %s) / 60)::int AS offset_minutes,
                           sum(jobs)::int AS jobs
                    FROM {rollup.TABLE} WHERE minute >= %s AND minute < %s GROUP BY minute, status
                ) per_minute GROUP BY status""",
            [window.start, window.start, window.end],
        )
        for status, offsets, jobs in cursor.fetchall():
            for offset, n in zip(offsets, jobs, strict=True):
                counts[status][offset] = n
    return counts


def ttft_bins(window: Window) -> list[TtftBin]:
    """Time to first token of the jobs that succeeded: what a client that got an answer waited.
    A failure's or a cancel's first token says little, and reading only the succeeded rows sums
    about a third of a day's rollup in the costliest query of the page."""
    # One sum per bucket, by subscript: reading the arrays whole and adding them up in Python
    # would cost ~10,000 rows x 26 buckets at a busy day's rollup size.
    sums = ", ".join(f"sum(ttft_buckets[{i + 1}])" for i in range(len(rollup.BUCKETS_MS)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, minute, %s) AS bin, {sums} FROM {rollup.TABLE}
                WHERE minute >= %s AND minute < %s AND status = 'succeeded' AND ttft_jobs > 0
                GROUP BY bin""",
            # django-stubs leave timedelta out of the parameter types; psycopg sends it as an interval.
            [TTFT_BIN, BIN_ORIGIN, window.start, window.end],  # type: ignore[list-item]
        )
        found = {row[0]: [int(n) for n in row[1:]] for row in cursor.fetchall()}
    bins = []
    start = BIN_ORIGIN + (window.start - BIN_ORIGIN) // TTFT_BIN * TTFT_BIN
    while start < window.end:
        buckets = found.get(start, [])
        bins.append(
            TtftBin(
                start=start,
                jobs=sum(buckets),
                p50_ms=rollup.percentile(buckets, 0.5),
                p95_ms=rollup.percentile(buckets, 0.95),
            )
        )
        start += TTFT_BIN
    return bins


def by_engine_and_outcome(window: Window) -> tuple[list[EngineTokens], int, list[ErrorCode]]:
    """Tokens per engine (most first); every job that ended; the failed and cancelled ones by
    code (most first). One scan of the window's rows for the three."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT e.name, r.status, r.code, sum(r.jobs), sum(r.input_tokens),
                       sum(r.output_tokens)
                FROM {rollup.TABLE} r JOIN jobs_engine e ON e.id = r.engine_id
                WHERE r.minute >= %s AND r.minute < %s GROUP BY e.name, r.status, r.code""",
            [window.start, window.end],
        )
        rows = cursor.fetchall()
    tokens: dict[str, tuple[int, int]] = {}
    codes: dict[tuple[str, str], int] = {}
    for engine, status, code, jobs, input_tokens, output_tokens in rows:
        before_in, before_out = tokens.get(engine, (0, 0))
        tokens[engine] = (before_in + int(input_tokens), before_out + int(output_tokens))
        if status != Job.Status.SUCCEEDED:
            codes[status, code] = codes.get((status, code), 0) + int(jobs)
    ended = sum(int(row[3]) for row in rows)
    errors = [ErrorCode(status, code, jobs, jobs / ended) for (status, code), jobs in codes.items()]
    per_engine = [EngineTokens(name, i, o) for name, (i, o) in tokens.items()]
    return (
        sorted(per_engine, key=lambda t: (-(t.input_tokens + t.output_tokens), t.engine)),
        ended,
        sorted(errors, key=lambda e: (-e.jobs, e.code)),
    )


def last_24_hours(now: datetime | None = None) -> Day:
    window = Window.last_24_hours(now)
    tokens, ended, errors = by_engine_and_outcome(window)
    return Day(
        window=window,
        per_minute=jobs_per_minute(window),
        ttft=ttft_bins(window),
        tokens=tokens,
        errors=errors,
        ended=ended,
    )


# ---- this moment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    queue_depth: dict[str, int] | None  # None: the broker did not answer
    queued: int
    running: int
    readers_waiting: int | None  # None: no web process has reported one


def _readers_waiting() -> int | None:
    """The sum over the web processes sharing the metrics directory (this one alone without)."""
    for family in metrics.registry().collect():
        if family.name == metrics.READERS_WAITING._name:
            return round(sum(sample.value for sample in family.samples))
    return None


def _queue_depth() -> dict[str, int] | None:
    collector = metrics.QueueDepth(settings.SPOOL.broker.url, [settings.SPOOL.broker.queue], timeout=1.0)
    for family in collector.collect():
        return {sample.labels["queue"]: round(sample.value) for sample in family.samples}
    return None


def live() -> Live:
    # Both counts walk the (status, created_at) index over the few unfinished jobs.
    unfinished = dict(
        Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Live(
        queue_depth=_queue_depth(),
        queued=unfinished.get(Job.Status.QUEUED, 0),
        running=unfinished.get(Job.Status.RUNNING, 0),
        readers_waiting=_readers_waiting(),
    )
