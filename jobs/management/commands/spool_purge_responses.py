"""Delete stored responses older than SPOOL_RESPONSES_RETENTION_DAYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from jobs.retention import purge_responses


class Command(BaseCommand):
    help = (
        "Delete the stored responses older than SPOOL_RESPONSES_RETENTION_DAYS (workers do it every"
        " SPOOL_RETENTION_EVERY_SECONDS; `spool_purge` runs every purge at once)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = purge_responses(now=timezone.now())
        self.stdout.write(f"{deleted} stored responses deleted")
