"""Fills (or, after a change of SPOOL_SEARCH_CONFIG, rebuilds) the stored completions' search vectors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import search


class Command(BaseCommand):
    help = (
        "Compute the search vector of stored completions that have none, in batches. With "
        "--rebuild, recreate the document function in the configured language and recompute every row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Apply a new SPOOL_SEARCH_CONFIG.")
        parser.add_argument("--batch", type=int, default=search.BATCH, help="Rows per transaction.")

    def handle(self, *args: Any, rebuild: bool, batch: int, **options: Any) -> None:
        if rebuild:
            search.install()  # new rows get the new language from here on
        done = search.backfill(
            rebuild=rebuild,
            batch=batch,
            progress=lambda n: self.stdout.write(f"{n:,} rows", ending="\r"),
        )
        self.stdout.write(self.style.SUCCESS(f"Search vectors computed for {done:,} stored completions."))
