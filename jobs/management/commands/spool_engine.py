"""Lists, shows, adds, updates, limits and disables engines, and sets their deployments:
`manage.py spool_engine add NAME --kind openai ...`, `manage.py spool_engine limit NAME
--max-concurrency 4`, `manage.py spool_engine deployment NAME gpu-a --base-url URL --weight 2`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from jobs import capacity, services
from jobs.models import Deployment, Engine
from jobs.selectors import parse_uuid

NO_LIMIT = ("0", "none")


def limit_value(text: str) -> int | None:
    """A limit as given on the command line: a positive whole number, or 0 / none for no limit."""
    if text.strip().lower() in NO_LIMIT:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value <= capacity.LIMIT_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a limit: give a whole number from 1 to {capacity.LIMIT_MAX}, "
            "or 0 or none for no limit"
        )
    return value


def _limit_options(parser: CommandParser) -> None:
    """The three limits; one left out keeps its value (argparse.SUPPRESS: it is not in the options)."""
    for field, meaning in (
        ("max_concurrency", "jobs running on it at once, across every worker"),
        ("requests_per_minute", "jobs started per minute"),
        ("tokens_per_minute", "tokens per minute (prompt and max tokens estimated at the start)"),
    ):
        parser.add_argument(
            "--" + field.replace("_", "-"),
            dest=field,
            type=limit_value,
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"The most {meaning}; 0 or none: no limit. Left out: unchanged.",
        )


def _limits_given(options: dict[str, Any]) -> dict[str, int | None]:
    return {field: options[field] for field in capacity.LIMIT_FIELDS if field in options}


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= capacity.LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {capacity.LIMIT_MAX}")
    return value


def _deployment_line(row: Deployment) -> str:
    state = "" if row.is_active else " (disabled)"
    most = row.max_concurrency or "none"
    key = "set" if row.secret else "not set"
    return f"{row.base_url} weight={row.weight} max_concurrency={most} api_key={key}{state}"


def _limits_line(engine: Engine) -> str:
    return " ".join(f"{field}={getattr(engine, field) or 'none'}" for field in capacity.LIMIT_FIELDS)


class Command(BaseCommand):
    help = "Manage engines. The upstream API key is stored, never printed."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="List engines with their ids (and limits, when they have any).")
        show = sub.add_parser("show", help="One engine: its config, limits and live queue.")
        show.add_argument("engine", help="Its name or id.")
        add = sub.add_parser("add", help="Create or update an engine by name.")
        add.add_argument("name")
        add.add_argument("--kind", choices=[k for k, _ in Engine.Kind.choices], default=Engine.Kind.OPENAI)
        add.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
        add.add_argument("--model", help="The upstream's model name.")
        add.add_argument("--api-key", help="Upstream API key (stored; never shown back).")
        add.add_argument("--header", action="append", default=[], help="Extra header NAME=VALUE.")
        add.add_argument("--text-tools", action="store_true", help="Describe tools in the prompt.")
        add.add_argument("--config", default="{}", help="More config as a JSON object.")
        _limit_options(add)
        limit = sub.add_parser("limit", help="Set what the engine's upstream can take.")
        limit.add_argument("engine", help="Its name or id.")
        _limit_options(limit)
        disable = sub.add_parser("disable", help="Stop offering an engine (its jobs stay).")
        disable.add_argument("name")
        deployment = sub.add_parser(
            "deployment", help="Add, change or remove one of an engine's upstream servers (by name)."
        )
        deployment.add_argument("engine", help="Its name or id.")
        deployment.add_argument("deployment", help="The deployment's name, unique within the engine.")
        deployment.add_argument("--base-url", help="Its OpenAI-compatible base URL (needed to add one).")
        deployment.add_argument("--api-key", help="Its API key (stored; never shown back).")
        deployment.add_argument("--weight", type=positive, help="Its share of the engine's jobs (default 1).")
        deployment.add_argument(
            "--max-concurrency", type=limit_value, default=argparse.SUPPRESS, metavar="N",
            help="Jobs on it at once; 0 or none: no limit of its own.",
        )  # fmt: skip
        deployment.add_argument("--disable", action="store_true", help="Place no job on it.")
        deployment.add_argument("--enable", action="store_true", help="Place jobs on it again.")
        deployment.add_argument("--remove", action="store_true", help="Delete it.")
        fallback = sub.add_parser(
            "fallback", help="Name the engine that takes the jobs this one fails before their first chunk."
        )
        fallback.add_argument("engine", help="Its name or id.")
        fallback.add_argument("fallback", help="The fallback's name or id; none: no fallback.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    @staticmethod
    def _engine(ref: str) -> Engine:
        key = parse_uuid(ref)
        engine = Engine.objects.filter(pk=key).first() if key else Engine.objects.filter(name=ref).first()
        if engine is None:
            raise CommandError(f"no engine with id or name {ref!r}")
        return engine

    def _list(self, **options: Any) -> None:
        for engine in Engine.objects.all():
            state = "" if engine.is_active else "  (disabled)"
            # An engine without limits keeps the line it always had: scripts read it.
            limits = f"  {_limits_line(engine)}" if engine.is_limited else ""
            self.stdout.write(f"{engine.pk}  {engine.kind:8}  {engine.name}{state}{limits}")

    def _show(self, *, engine: str, **options: Any) -> None:
        found = self._engine(engine)
        rows = [
            ("id", str(found.pk)),
            ("name", found.name),
            ("kind", found.kind),
            ("state", "active" if found.is_active else "disabled"),
            ("config", json.dumps(found.config, sort_keys=True)),
            ("api_key", "set" if found.secret else "not set"),
            *((field, str(getattr(found, field) or "none")) for field in capacity.LIMIT_FIELDS),
        ]
        rows.append(("fallback", found.fallback.name if found.fallback else "none"))
        for row in found.deployments.all():
            rows.append((f"deployment {row.name}", _deployment_line(row)))
        if found.is_limited:
            status = capacity.queue_status(found)
            if status is None:
                rows.append(("queue", capacity.UNAVAILABLE))
            else:
                rows += [
                    ("waiting", capacity.waiting_text(status)),
                    ("slots", capacity.slots_text(found, status)),
                    ("stopped", capacity.reason_text(status)),
                ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"{label.ljust(width)}  {value}")

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
        with transaction.atomic():
            engine = services.engine_upsert(name=name, kind=kind, config=values, secret=options["api_key"])
            limits = _limits_given(options)
            if limits:
                for field, value in limits.items():
                    setattr(engine, field, value)
                engine.save(update_fields=list(limits))  # its queue hears of it (jobs.scheduling.signals)
        self.stdout.write(f"engine_id={engine.pk}")

    def _limit(self, *, engine: str, **options: Any) -> None:
        found = self._engine(engine)
        limits = _limits_given(options)
        if not limits:
            raise CommandError(
                "nothing to change: give --max-concurrency, --requests-per-minute or --tokens-per-minute"
            )
        for field, value in limits.items():
            setattr(found, field, value)
        found.save(update_fields=list(limits))
        self.stdout.write(f"{found.name}: {_limits_line(found)}")

    def _deployment(self, *, engine: str, deployment: str, **options: Any) -> None:
        found = self._engine(engine)
        if found.kind != Engine.Kind.OPENAI:
            raise CommandError("only an openai engine has deployments")
        existing = Deployment.objects.filter(engine=found, name=deployment).first()
        if options["remove"]:
            if existing is None:
                raise CommandError(f"engine {found.name!r} has no deployment {deployment!r}")
            existing.delete()
            self.stdout.write(f"removed {found.name}/{deployment}")
            return
        if existing is None and not options["base_url"]:
            raise CommandError("a new deployment needs --base-url")
        row = existing or Deployment(engine=found, name=deployment)
        if options["base_url"]:
            row.base_url = options["base_url"]
        if options["api_key"] is not None:
            row.secret = options["api_key"]
        if options["weight"] is not None:
            row.weight = options["weight"]
        if "max_concurrency" in options:
            row.max_concurrency = options["max_concurrency"]
        if options["disable"] or options["enable"]:
            row.is_active = options["enable"]
        row.save()
        self.stdout.write(f"{found.name}/{row.name}: {_deployment_line(row)}")

    def _fallback(self, *, engine: str, fallback: str, **options: Any) -> None:
        found = self._engine(engine)
        found.fallback = None if fallback.lower() == "none" else self._engine(fallback)
        if found.fallback is not None and found.fallback.pk == found.pk:
            raise CommandError("an engine cannot be its own fallback")
        found.save(update_fields=["fallback"])
        self.stdout.write(f"{found.name}: fallback={found.fallback.name if found.fallback else 'none'}")

    def _disable(self, *, name: str, **options: Any) -> None:
        if not Engine.objects.filter(name=name).update(is_active=False):
            raise CommandError(f"no engine named {name!r}")
        self.stdout.write(f"disabled {name}")
