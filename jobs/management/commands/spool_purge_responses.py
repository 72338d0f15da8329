"""Delete stored responses older than SPOOL_RESPONSES_RETENTION_DAYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.responses.store import purge_expired


class Command(BaseCommand):
    help = "Delete the stored responses older than SPOOL_RESPONSES_RETENTION_DAYS (run it daily)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = purge_expired()
        self.stdout.write(f"{deleted} stored responses deleted")
