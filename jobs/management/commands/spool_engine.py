"""Lists, adds, updates and disables engines: `manage.py spool_engine add NAME --kind openai ...`."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import services
from jobs.models import Engine


class Command(BaseCommand):
    help = "Manage engines. The upstream API key is stored, never printed."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="List engines with their ids.")
        add = sub.add_parser("add", help="Create or update an engine by name.")
        add.add_argument("name")
        add.add_argument("--kind", choices=[k for k, _ in Engine.Kind.choices], default=Engine.Kind.OPENAI)
        add.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
        add.add_argument("--model", help="The upstream's model name.")
        add.add_argument("--api-key", help="Upstream API key (stored; never shown back).")
        add.add_argument("--header", action="append", default=[], help="Extra header NAME=VALUE.")
        add.add_argument("--text-tools", action="store_true", help="Describe tools in the prompt.")
        add.add_argument("--config", default="{}", help="More config as a JSON object.")
        disable = sub.add_parser("disable", help="Stop offering an engine (its jobs stay).")
        disable.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _list(self, **options: Any) -> None:
        for engine in Engine.objects.all():
            state = "" if engine.is_active else "  (disabled)"
            self.stdout.write(f"{engine.pk}  {engine.kind:8}  {engine.name}{state}")

    def _add(self, *, name: str, kind: str, config: str, header: list[str], **options: Any) -> None:
        try:
            values = json.loads(config)
        except ValueError as exc:
            raise CommandError(f"--config is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise CommandError("--config must be a JSON object")
        if options["base_url"]:
            values["base_url"] = options["base_url"]
        if options["model"]:
            values["model"] = options["model"]
        if options["text_tools"]:
            values["text_tools"] = True
        if header:
            values["headers"] = dict(item.split("=", 1) for item in header if "=" in item)
        if kind == Engine.Kind.OPENAI and not values.get("base_url"):
            raise CommandError("an openai engine needs --base-url")
        values.pop("api_key", None)  # secrets go in the secret field only
        engine = services.engine_upsert(name=name, kind=kind, config=values, secret=options["api_key"])
        self.stdout.write(f"engine_id={engine.pk}")

    def _disable(self, *, name: str, **options: Any) -> None:
        if not Engine.objects.filter(name=name).update(is_active=False):
            raise CommandError(f"no engine named {name!r}")
        self.stdout.write(f"disabled {name}")
