"""Erase everything of one user: keys, webhook endpoints and deliveries, stored completions and
responses, jobs and their chunk logs, rooms, then the user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import erasure


class Command(BaseCommand):
    help = (
        "Erase everything of USERNAME (keys, webhook endpoints and deliveries, stored completions and"
        " responses, jobs and their chunk logs, rooms) and the user. --dry-run counts; --yes erases."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument("--yes", action="store_true", help="Erase: this cannot be undone.")

    def handle(self, *args: Any, username: str, dry_run: bool, yes: bool, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}.")
        if dry_run:
            for what, count in erasure.counts(user).items():
                self.stdout.write(f"{count} {what}")
            self.stdout.write(f"Nothing deleted (dry run); run again with --yes to erase {username!r}.")
            return
        if not yes:
            raise CommandError(
                f"This deletes everything of {username!r} for good: --dry-run to count it, --yes to erase."
            )
        done = erasure.erase(user)
        for what, count in done.items():
            if what != "jobs still running":
                self.stdout.write(f"{count} {what} deleted")
        if done["jobs still running"]:
            self.stdout.write(
                self.style.WARNING(
                    f"{done['jobs still running']} jobs were still running after "
                    f"{erasure.STOP_WAIT_SECONDS:.0f} s; what their workers write to Redis expires "
                    "with the log's TTL (SPOOL_CHUNK_LOG_TTL_SECONDS)."
                )
            )
        self.stdout.write(self.style.SUCCESS(f"Erased {username!r}."))
