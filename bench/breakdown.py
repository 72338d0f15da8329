"""Where time to first token goes, from the timestamps Spool keeps on each job in Postgres."""

from __future__ import annotations

from typing import Any

import psycopg

from bench.accounting import DSN
from bench.clients import Gen
from bench.stats import ms


def ttft_breakdown(gens: list[Gen], wall_offset: float) -> dict[str, Any]:
    """Per stage, p50 and p99 in ms. wall_offset = time.time() - time.monotonic(): one clock.
    accept: request sent -> job row created (web); queue: -> claimed by the worker; worker: ->
    first chunk read from the upstream (includes the upstream's own first-token time); deliver:
    -> first content received by the client."""
    by_id = {g.job_id: g for g in gens if g.job_id and g.t_first is not None}
    if not by_id:
        return {}
    with psycopg.connect(DSN, autocommit=True) as db:
        rows = db.execute(
            "SELECT id::text, extract(epoch FROM created_at), extract(epoch FROM started_at),"
            " extract(epoch FROM first_chunk_at) FROM jobs_job WHERE id = ANY(%s::uuid[])",
            (list(by_id),),
        ).fetchall()
    stages: dict[str, list[float]] = {"accept": [], "queue": [], "worker": [], "deliver": []}
    for job_id, created, started, first in rows:
        gen = by_id[job_id]
        if created is None or started is None or first is None or gen.t_first is None:
            continue
        created, started, first = float(created), float(started), float(first)
        stages["accept"].append(created - (gen.t_send + wall_offset))
        stages["queue"].append(started - created)
        stages["worker"].append(first - started)
        stages["deliver"].append(gen.t_first + wall_offset - first)
    return {stage: ms(values, 50, 99) for stage, values in stages.items()}
