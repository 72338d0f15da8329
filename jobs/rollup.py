"""The per-minute rollup of ended jobs that the admin overview draws its 24-hour charts from.

One row per (minute the job ended, engine, final status, error code) holds counters, token sums
and a histogram of time to first token, so a chart of the last 24 hours reads at most
1,440 x engines x outcomes small rows however many jobs there were; scanning the jobs
themselves cost seconds at 1,000,000 jobs a day (docs/DASHBOARD.md).

A Postgres trigger keeps it, so every path that ends a job counts it without knowing of it: the
worker's final commit, a cancel while queued, the sweeper ending a job whose worker died, the
seeding COPY. It is a deferred constraint trigger: the upsert runs at the commit of the job's
final transaction, so the lock on the (hot, within its minute) rollup row is held for the commit
alone, not while that transaction goes on to store the completion.

Time to first token is request to first chunk (first_chunk_at - created_at): what a client
waited, queueing included. p50 / p95 are read from the histogram buckets (`percentile`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from jobs.models import JobMinute

TABLE = "jobs_jobminute"
JOBS = "jobs_job"
ADD_FUNCTION = "spool_job_minute_add"
TRIGGER_FUNCTION = "spool_job_minute_trigger"
INSERT_TRIGGER = "job_minute_on_insert"
UPDATE_TRIGGER = "job_minute_on_end"
TERMINAL = ("succeeded", "failed", "cancelled")

# Lower bounds, in milliseconds, of the time-to-first-token buckets: bucket i holds the jobs
# whose first chunk came in [BUCKETS_MS[i], BUCKETS_MS[i+1]). Spaced about 25 % apart where
# answers usually come (0.1-3 s), so a percentile read from them is within a bucket's width.
BUCKETS_MS = (
    0, 25, 50, 100, 150, 200, 250, 300, 400, 500, 650, 800, 1000, 1250, 1500, 2000, 2500, 3000,
    4000, 5000, 7500, 10000, 15000, 20000, 30000, 60000,
)  # fmt: skip
# Rows per backfill batch: each batch is its own short transaction.
BATCH = 20000

_TERMINAL_SQL = ", ".join(f"'{status}'" for status in TERMINAL)
_BOUNDS_SQL = "ARRAY[" + ", ".join(str(b) for b in BUCKETS_MS) + "]::float8[]"

INSTALL_SQL = f"""
CREATE OR REPLACE FUNCTION {ADD_FUNCTION}(job {JOBS}) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  -- Named apart from the rollup's columns, which the upsert names too.
  at_minute timestamptz := date_trunc('minute', coalesce(job.finished_at, now()));
  -- A failed or cancelled job's finish_reason is its error code (jobs/worker/runner.py).
  error_code text := CASE WHEN job.status = 'succeeded' THEN ''
                    ELSE coalesce(nullif(job.finish_reason, ''), 'unknown') END;
  -- NULL when no chunk came (greatest() alone would make that 0); never below 0 on clock skew.
  ttft_ms float8 := CASE WHEN job.first_chunk_at IS NOT NULL
    THEN greatest(extract(epoch FROM job.first_chunk_at - job.created_at) * 1000, 0) END;
  ttft_bucket int := width_bucket(ttft_ms, {_BOUNDS_SQL});
  job_input bigint := coalesce((job.usage ->> 'input_tokens')::numeric, 0)::bigint;
  job_output bigint := coalesce((job.usage ->> 'output_tokens')::numeric, 0)::bigint;
  one_bucket int[] := array_fill(0, ARRAY[{len(BUCKETS_MS)}]);
BEGIN
  IF ttft_bucket IS NULL THEN  -- no chunk ever came: counted, but not in the histogram
    INSERT INTO {TABLE} AS r (minute, engine_id, status, code, jobs, ttft_jobs, ttft_ms_sum,
                              ttft_buckets, input_tokens, output_tokens)
    VALUES (at_minute, job.engine_id, job.status, error_code, 1, 0, 0, one_bucket, job_input, job_output)
    ON CONFLICT ON CONSTRAINT jobminute_key DO UPDATE SET
      jobs = r.jobs + 1,
      input_tokens = r.input_tokens + EXCLUDED.input_tokens,
      output_tokens = r.output_tokens + EXCLUDED.output_tokens;
  ELSE
    one_bucket[ttft_bucket] := 1;
    INSERT INTO {TABLE} AS r (minute, engine_id, status, code, jobs, ttft_jobs, ttft_ms_sum,
                              ttft_buckets, input_tokens, output_tokens)
    VALUES (at_minute, job.engine_id, job.status, error_code, 1, 1, round(ttft_ms), one_bucket,
            job_input, job_output)
    ON CONFLICT ON CONSTRAINT jobminute_key DO UPDATE SET
      jobs = r.jobs + 1,
      ttft_jobs = r.ttft_jobs + 1,
      ttft_ms_sum = r.ttft_ms_sum + EXCLUDED.ttft_ms_sum,
      ttft_buckets[ttft_bucket] = r.ttft_buckets[ttft_bucket] + 1,
      input_tokens = r.input_tokens + EXCLUDED.input_tokens,
      output_tokens = r.output_tokens + EXCLUDED.output_tokens;
  END IF;
  RETURN 1;  -- so a backfill can sum what it counted
END
$$;

CREATE OR REPLACE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM {ADD_FUNCTION}(NEW);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS {INSERT_TRIGGER} ON {JOBS};
DROP TRIGGER IF EXISTS {UPDATE_TRIGGER} ON {JOBS};
CREATE CONSTRAINT TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {JOBS}
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.status IN ({_TERMINAL_SQL}))
  EXECUTE FUNCTION {TRIGGER_FUNCTION}();
CREATE CONSTRAINT TRIGGER {UPDATE_TRIGGER} AFTER UPDATE OF status ON {JOBS}
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.status IN ({_TERMINAL_SQL}) AND OLD.status NOT IN ({_TERMINAL_SQL}))
  EXECUTE FUNCTION {TRIGGER_FUNCTION}();
"""

DROP_SQL = f"""
DROP TRIGGER IF EXISTS {INSERT_TRIGGER} ON {JOBS};
DROP TRIGGER IF EXISTS {UPDATE_TRIGGER} ON {JOBS};
DROP FUNCTION IF EXISTS {TRIGGER_FUNCTION}();
DROP FUNCTION IF EXISTS {ADD_FUNCTION}({JOBS});
"""


def install(using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(INSTALL_SQL)


def backfill(
    *,
    since: datetime,
    before: datetime,
    batch: int = BATCH,
    using: str = "default",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Count the jobs created from `since` that ended before `before` (when the trigger was
    installed: later ends are the trigger's), walking the (created_at, id) index in batches, each
    committed on its own in autocommit, so no lock is held for longer than one batch. Returns
    the number of jobs counted."""
    done = 0
    last: tuple[datetime, str] = (since, "00000000-0000-0000-0000-000000000000")
    while True:
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"""
                WITH batch AS (
                    SELECT id, created_at FROM {JOBS} WHERE (created_at, id) > (%s, %s::uuid)
                    ORDER BY created_at, id LIMIT %s
                )
                SELECT newest.created_at, newest.id,
                       (SELECT coalesce(sum({ADD_FUNCTION}(j)), 0) FROM {JOBS} j JOIN batch USING (id)
                        WHERE j.status IN ({_TERMINAL_SQL}) AND j.finished_at < %s)
                FROM (SELECT * FROM batch ORDER BY created_at DESC, id DESC LIMIT 1) newest
                """,
                [last[0], last[1], batch, before],
            )
            row = cursor.fetchone()
        if row is None:
            return done
        newest, newest_id, counted = row
        last = (newest, str(newest_id))
        done += counted
        if progress is not None:
            progress(done)


def prune(*, now: datetime | None = None) -> int:
    """Delete the rollup rows of minutes older than SPOOL_ROLLUP_RETENTION_DAYS (0: none); how many went.
    One DELETE along the upsert key's index, whose leading column is the minute; at 1M jobs a day
    a day is ~35,000 rows."""
    days = settings.SPOOL.retention.rollup_days
    if days <= 0:  # kept for ever, as every retention setting reads 0
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = JobMinute.objects.filter(minute__lt=cutoff).delete()
    return deleted


def percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The `fraction` quantile (0.5, 0.95) in milliseconds from histogram counts, read as even
    within a bucket; the open last bucket answers its lower bound. None when it holds nothing."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = BUCKETS_MS[index]
            if index + 1 == len(BUCKETS_MS):
                return float(low)
            high = BUCKETS_MS[index + 1]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(BUCKETS_MS[-1])
