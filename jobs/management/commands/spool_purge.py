"""Delete everything past its retention now: what each worker does every SPOOL_RETENTION_EVERY_SECONDS."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import retention


class Command(BaseCommand):
    help = (
        "Delete the ended jobs, webhook deliveries, stored responses and rollup rows older than their"
        " retention settings, in short batches (workers do it every SPOOL_RETENTION_EVERY_SECONDS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=retention.BATCH, help="Rows per DELETE.")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        longest = 0.0

        def observe(what: str, rows: int, seconds: float) -> None:
            nonlocal longest
            longest = max(longest, seconds)

        started = time.monotonic()
        done = retention.purge(batch=batch, observe=observe)
        for what, deleted in done.items():
            self.stdout.write(f"{deleted} {what} deleted")
        self.stdout.write(
            f"in {time.monotonic() - started:.1f} s; the longest DELETE took {longest * 1000:.0f} ms"
        )
