"""Generates N realistic stored completions (and their jobs) with COPY, for dashboards and benchmarks."""

from __future__ import annotations

import itertools
import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone

from jobs.management.commands._seed_rows import ENGINES, OWNERS, Generator, timestamps
from jobs.models import Engine, Job, JobMinute, StoredCompletion


def _copy_value(field: models.Field, row: dict[str, Any]) -> Any:
    value = row[field.attname] if field.attname in row else field.get_default()
    if isinstance(field, models.JSONField) and value is not None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def copy_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """COPY is several times faster than INSERT for millions of rows; unset columns get defaults."""
    fields = model._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_copy_value(f, row) for f in fields])


def progress(done: int, total: int, seconds: float) -> str:
    """One line per batch, so minutes of seeding show how far along they are, and a log keeps it."""
    rate = done / seconds if seconds > 0 else 0.0
    left = f", about {(total - done) / rate:,.0f} s left" if rate and done < total else ""
    return (
        f"{done:,}/{total:,} rows ({100 * done / total:.0f}%) in {seconds:,.1f} s, {rate:,.0f} rows/s{left}"
    )


class Command(BaseCommand):
    help = (
        "Generate N realistic stored completions and their jobs (varied metadata, models, sizes,"
        " outcomes and timings); --jobs-only for the jobs alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)
        parser.add_argument("--days", type=int, default=540, help="Spread rows over this many past days.")
        parser.add_argument("--end", help="ISO time of the newest row (default: now).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (same seed, same rows).")
        parser.add_argument("--batch", type=int, default=20000, help="Rows per COPY transaction.")
        parser.add_argument(
            "--jobs-only",
            action="store_true",
            help="Only the jobs, no stored completions: what the admin overview reads, seeded faster.",
        )

    def handle(
        self,
        *args: Any,
        count: int,
        days: int,
        end: str | None,
        seed: int,
        batch: int,
        jobs_only: bool,
        **options: Any,
    ) -> None:
        rng = random.Random(seed)
        owners = [get_user_model().objects.get_or_create(username=name)[0].pk for name in OWNERS]
        engines = []
        for name, kind, _, tokens_per_second in ENGINES:
            config: dict[str, Any] = (
                {"tokens_per_second": tokens_per_second}
                if kind == "offline"
                else {"base_url": "https://llm.example.invalid/v1", "model": name}
            )
            # Upstream engines made here point nowhere: inactive, so no one can start a job on one.
            engine, _ = Engine.objects.get_or_create(
                name=name, defaults={"kind": kind, "config": config, "is_active": kind == "offline"}
            )
            engines.append(engine)
        generator = Generator(rng, owners, engines)
        newest = datetime.fromisoformat(end) if end else timezone.now()
        if timezone.is_naive(newest):
            newest = timezone.make_aware(newest)
        times = timestamps(count, newest - timedelta(days=days), newest, rng)
        done = 0
        started = time.monotonic()
        while done < count:
            size = min(batch, count - done)
            pairs = [generator.row(created) for created in itertools.islice(times, size)]
            with transaction.atomic():
                copy_rows(Job, [job for job, _ in pairs])
                if not jobs_only:
                    copy_rows(StoredCompletion, [stored for _, stored in pairs])
            done += size
            self.stdout.write(progress(done, count, time.monotonic() - started))
            self.stdout.flush()
        with connection.cursor() as cursor:  # fresh planner statistics for the new rows
            cursor.execute(f"ANALYZE {Job._meta.db_table}, {StoredCompletion._meta.db_table}")
            # Each batch's jobs rewrote their minutes' rollup rows thousands of times inside one
            # transaction, where no old version can be pruned: compact what a day of separate
            # job commits would have left (jobs/rollup.py). VACUUM cannot run inside a
            # transaction (a test's), where the deferred trigger has not run either.
            if not connection.in_atomic_block:
                cursor.execute(f"VACUUM (FULL, ANALYZE) {JobMinute._meta.db_table}")
        what = "jobs" if jobs_only else "stored completions"
        self.stdout.write(self.style.SUCCESS(f"Generated {count:,} {what}."))
