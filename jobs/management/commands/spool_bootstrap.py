"""Registers the offline engine (and an upstream one from env) and prints a development key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from jobs import services
from jobs.keys import hash_secret
from jobs.models import ApiKey, Engine

DEV_KEYS = Path(settings.BASE_DIR) / "run" / "dev-keys.json"


class Command(BaseCommand):
    help = "Register engines and create (or reuse) a development user and key pair; print them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--keys-file", default=str(DEV_KEYS), help="Where the dev key pair is kept.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object, for scripts."
        )

    def handle(self, *args: Any, keys_file: str, as_json: bool, **options: Any) -> None:
        offline = services.engine_ensure_offline()
        upstream = self._upstream_from_env()
        access, secret = self._dev_keys(Path(keys_file))
        info = {
            "engine_id": str(offline.pk),
            "upstream_engine_id": str(upstream.pk) if upstream else None,
            "access_key": access,
            "secret_key": secret,
        }
        if as_json:
            self.stdout.write(json.dumps(info))
            return
        self.stdout.write(f"Offline engine:   {offline.name}  engine_id={offline.pk}")
        if upstream:
            self.stdout.write(f"Upstream engine:  {upstream.name}  engine_id={upstream.pk}")
        self.stdout.write("Development user: dev (staff; set a password: manage.py changepassword dev)")
        self.stdout.write(f"ACCESS_KEY={access}")
        self.stdout.write(f"SECRET_KEY={secret}")

    def _dev_keys(self, path: Path) -> tuple[str, str]:
        """Reuse the pair from an earlier run while its key still exists, so the printed
        credentials stay the same across restarts; the database only has the secret's hash."""
        user = services.user_ensure(username="dev", staff=True)
        if path.exists():
            saved = json.loads(path.read_text())
            if ApiKey.objects.filter(
                access_key=saved["access_key"], secret_hash=hash_secret(saved["secret_key"]), revoked_at=None
            ).exists():
                return saved["access_key"], saved["secret_key"]
        key, secret = services.key_create(owner=user, name="development")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"access_key": key.access_key, "secret_key": secret}))
        path.chmod(0o600)
        return key.access_key, secret

    def _upstream_from_env(self) -> Engine | None:
        engines = settings.SPOOL.engines
        if not engines.upstream_base_url:
            return None
        return services.engine_upsert(
            name=engines.upstream_name,
            kind=Engine.Kind.OPENAI,
            config={
                "base_url": engines.upstream_base_url,
                "model": engines.upstream_model,
                "text_tools": engines.upstream_text_tools,
            },
            secret=engines.upstream_api_key,
        )
