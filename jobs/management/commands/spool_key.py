"""API keys from the command line: create (the secret is printed once), list, revoke, set an
expiry, limit to engines and faces, cap the priority class and set the fair-share weight.
`spool_key USERNAME` still creates, as it always did."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from jobs import services
from jobs.models import ApiKey, Engine
from jobs.placement import CLASSES
from jobs.selectors import parse_uuid

ACTIONS = ("create", "list", "revoke", "set-expiry", "limit")
FACES = [face.value for face in ApiKey.Face]
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# A weight's column is a Postgres integer; 0 would give its owner no share at all.
WEIGHT_MAX = 2**31 - 1


def weight_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= WEIGHT_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a weight: give a whole number from 1 to {WEIGHT_MAX}"
        )
    return value


def parse_when(value: str, *, now: datetime) -> datetime | None:
    """'never' -> None; '30d', '12h', '15m', '45s' -> that long from now; else an ISO 8601 time
    (UTC when it names no zone)."""
    if value == "never":
        return None
    match = _DURATION.match(value)
    if match:
        return now + timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"not a time: {value!r}: give 'never', a duration (30d, 12h, 15m, 45s) or an ISO 8601 time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def engine_ids(refs: Sequence[str]) -> list[str]:
    """Engine ids of names or ids (disabled engines too: a limit may be set before enabling)."""
    ids = []
    for ref in refs:
        key = parse_uuid(ref)
        engine = Engine.objects.filter(pk=key).first() if key else Engine.objects.filter(name=ref).first()
        if engine is None:
            raise CommandError(f"no engine with id or name {ref!r}")
        ids.append(str(engine.pk))
    return ids


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _state(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


class Command(BaseCommand):
    help = (
        "Manage API keys: create USERNAME (the default: `spool_key USERNAME`), list, revoke, "
        "set-expiry, limit. Secrets are printed once, at creation."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_args = parser.parse_args

        def with_default_action(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
            given = list(args or [])
            # `spool_key USERNAME ...`, as before subcommands, means create.
            if given and given[0] not in ACTIONS and not given[0].startswith("-"):
                given.insert(0, "create")
            return parse_args(given, namespace)

        parser.parse_args = with_default_action  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key pair for USERNAME (made if missing).")
        create.add_argument("username")
        create.add_argument("--name", default="", help="A label for the key.")
        create.add_argument("--expires", help="never (the default), 30d, 12h, 15m, 45s, or an ISO 8601 time.")
        self._limits(create)
        listing = sub.add_parser("list", help="Keys with their state, expiry, limits and last use.")
        listing.add_argument("--user", help="Only this user's keys.")
        revoke = sub.add_parser("revoke", help="Refuse the key from now on (within SPOOL_KEY_CACHE_SECONDS).")
        revoke.add_argument("access_key")
        expiry = sub.add_parser("set-expiry", help="When the key stops working.")
        expiry.add_argument("access_key")
        expiry.add_argument("when", help="never, 30d, 12h, 15m, 45s, or an ISO 8601 time.")
        limit = sub.add_parser(
            "limit",
            help="Set the engines and faces the key may use, its highest priority class and its weight.",
        )
        limit.add_argument("access_key")
        self._limits(limit)

    @staticmethod
    def _limits(parser: CommandParser) -> None:
        parser.add_argument(
            "--engine", action="append", default=None, help="An engine (name or id) it may use; repeat."
        )
        parser.add_argument(
            "--face", action="append", default=None, choices=FACES, help="A face it may use; repeat."
        )
        parser.add_argument("--all-engines", action="store_true", help="Lift the engine limit.")
        parser.add_argument("--all-faces", action="store_true", help="Lift the face limit.")
        parser.add_argument(
            "--max-priority",
            choices=CLASSES,
            default=None,
            help="The highest priority class its jobs may ask for (a job asking above it runs at it); "
            "interactive (the default at creation) leaves every class open.",
        )
        parser.add_argument(
            "--weight",
            type=weight_value,
            default=None,
            metavar="N",
            help="Its owner's share of each limited engine against other owners' jobs of the same "
            "class (2 starts two jobs for each one of weight 1); 1 at creation.",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, "_" + action.replace("-", "_"))(**options)

    def _key(self, access_key: str) -> ApiKey:
        key = ApiKey.objects.filter(access_key=access_key).first()
        if key is None:
            raise CommandError(f"no key with access key {access_key!r}")
        return key

    @staticmethod
    def _set_scheduling(key: ApiKey, options: dict[str, Any]) -> None:
        """Sets the key's max priority and weight, those given."""
        given = {field: options[field] for field in ("max_priority", "weight") if options[field] is not None}
        for field, value in given.items():
            setattr(key, field, value)
        if given:
            key.save(update_fields=list(given))

    def _create(self, *, username: str, name: str, expires: str | None, **options: Any) -> None:
        expires_at = parse_when(expires, now=timezone.now()) if expires else None
        engines = engine_ids(options["engine"] or [])
        with transaction.atomic():
            user = services.user_ensure(username=username)
            key, secret = services.key_create(
                owner=user, name=name, expires_at=expires_at, engines=engines, faces=options["face"] or []
            )
            self._set_scheduling(key, options)
        self.stdout.write(f"ACCESS_KEY={key.access_key}")
        self.stdout.write(f"SECRET_KEY={secret}")
        self.stdout.write("Bearer token for /v1 (OpenAI SDK api_key): the SECRET_KEY.")

    def _list(self, *, user: str | None, **options: Any) -> None:
        keys = ApiKey.objects.select_related("owner").order_by("owner__username", "created_at")
        if user:
            keys = keys.filter(owner__username=user)
        names = {str(e.pk): e.name for e in Engine.objects.all()}
        now = timezone.now()
        rows = [(
            "ACCESS_KEY", "OWNER", "STATE", "EXPIRES", "LAST_USED", "ENGINES", "FACES", "MAX_PRIORITY",
            "WEIGHT", "NAME",
        )]  # fmt: skip
        for key in keys:
            engines = ",".join(names.get(str(e), f"{e} (deleted)") for e in key.engines)
            rows.append(
                (key.access_key, key.owner.username, _state(key, now), _time(key.expires_at),
                 _time(key.last_used_at), engines or "all", ",".join(key.faces) or "all", key.max_priority,
                 str(key.weight), key.name)
            )  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )

    def _revoke(self, *, access_key: str, **options: Any) -> None:
        key = self._key(access_key)
        if services.key_revoke(key=key):
            self.stdout.write(f"revoked {key.access_key}")
        else:
            self.stdout.write(f"{key.access_key} was already revoked")

    def _set_expiry(self, *, access_key: str, when: str, **options: Any) -> None:
        key = self._key(access_key)
        expires_at = parse_when(when, now=timezone.now())
        services.key_set_expiry(key=key, expires_at=expires_at)
        self.stdout.write(f"{key.access_key} expires {expires_at.isoformat() if expires_at else 'never'}")

    def _limit(
        self, *, access_key: str, engine: list[str] | None, face: list[str] | None, **options: Any
    ) -> None:
        key = self._key(access_key)
        if engine and options["all_engines"] or face and options["all_faces"]:
            raise CommandError("give either --engine or --all-engines (and either --face or --all-faces)")
        engines = [] if options["all_engines"] else (engine_ids(engine) if engine else None)
        faces = [] if options["all_faces"] else face
        scheduling = options["max_priority"] is not None or options["weight"] is not None
        if engines is None and faces is None and not scheduling:
            raise CommandError(
                "nothing to change: give --engine, --face, --all-engines, --all-faces, "
                "--max-priority or --weight"
            )
        with transaction.atomic():
            if engines is not None or faces is not None:
                services.key_limit(key=key, engines=engines, faces=faces)
            self._set_scheduling(key, options)
        shown_engines = ",".join(str(e) for e in key.engines) or "all"
        self.stdout.write(
            f"{key.access_key} engines: {shown_engines}; faces: {','.join(key.faces) or 'all'}; "
            f"max priority: {key.max_priority}; weight: {key.weight}"
        )
