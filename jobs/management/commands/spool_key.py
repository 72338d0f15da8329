"""Creates an API key for a user and prints its secret once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import services


class Command(BaseCommand):
    help = "Create an API key pair for USERNAME (the user is created if missing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = services.user_ensure(username=username)
        key, secret = services.key_create(owner=user, name=name)
        self.stdout.write(f"ACCESS_KEY={key.access_key}")
        self.stdout.write(f"SECRET_KEY={secret}")
        self.stdout.write("Bearer token for /v1 (OpenAI SDK api_key): the SECRET_KEY.")
