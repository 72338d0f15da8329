"""Delete the admin overview's rollup rows older than SPOOL_ROLLUP_RETENTION_DAYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.rollup import prune


class Command(BaseCommand):
    help = (
        "Delete the overview's per-minute rollup rows older than SPOOL_ROLLUP_RETENTION_DAYS (run it daily)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = prune()
        self.stdout.write(f"{deleted} rollup rows deleted")
