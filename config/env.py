"""Tiny typed readers of environment variables that fail loudly on a bad value, naming it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


class Env:
    """Reads one mapping of variables (os.environ, or a test's own) and keeps the name of every
    variable it was asked for, so the README's table can be checked against what is read."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.names: list[str] = []

    def _raw(self, name: str) -> str | None:
        self.names.append(name)
        raw = self.environ.get(name)
        return None if raw is None or raw == "" else raw

    def text(self, name: str, default: str) -> str:
        self.names.append(name)
        return self.environ.get(name, default)

    def integer(self, name: str, default: int) -> int:
        return self._parsed(name, default, int, "an integer")

    def number(self, name: str, default: float) -> float:
        return self._parsed(name, default, float, "a number")

    def _parsed(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be {what}, got {raw!r}") from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")

    def items(self, name: str, default: str = "") -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(item.strip() for item in self.text(name, default).split(",") if item.strip())

    def json_object(self, name: str) -> dict[str, Any]:
        raw = self._raw(name)
        if raw is None:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ImproperlyConfigured(f"{name} must be a JSON object, got {raw!r}")
        return value

    def origins(self, name: str) -> tuple[str, ...]:
        """Comma-separated web origins (scheme://host[:port], nothing after): a page's URL or a
        trailing slash would never match what a browser sends as Origin, silently."""
        origins = self.items(name)
        for origin in origins:
            try:
                parts = urlsplit(origin)
                parts.port  # noqa: B018  (raises on a port that is no number)
            except ValueError:
                parts = None
            if (
                parts is None
                or parts.scheme not in {"http", "https"}
                or not parts.hostname
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ImproperlyConfigured(
                    f"{name} must list origins such as https://app.example.com or http://localhost:3000 "
                    f"(scheme, host and port only), got {origin!r}"
                )
        return origins

    def postgres_url(self, name: str, default: str) -> str:
        url = self.text(name, default)
        parts = urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql"} or not parts.path.strip("/"):
            raise ImproperlyConfigured(f"{name} must look like postgres://user@host:5432/dbname")
        return url

    def secret_key(self, name: str, *, debug: bool, fallback_file: Path) -> str:
        """The variable's value, else the contents of `fallback_file` (which `make run` writes
        once), else, under DEBUG only, a development key. Outside DEBUG a missing or weak key is
        refused: the SEMOSS session cookie and the admin's sessions are signed with it, so anyone
        who knows it can sign in as anyone."""
        value = self.text(name, "").strip()
        if not value and fallback_file.is_file():
            value = fallback_file.read_text().strip()
        if debug:
            return value or DEV_SECRET_KEY
        if not value or value == DEV_SECRET_KEY:
            raise ImproperlyConfigured(
                f"{name} is not set. With DJANGO_DEBUG off Spool needs a real secret key; {SECRET_KEY_HELP}"
            )
        # Django's own bar for a key (its security.W009 check): long and not repetitive.
        if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure-"):
            raise ImproperlyConfigured(
                f"{name} is too weak: use at least 50 random characters; {SECRET_KEY_HELP}"
            )
        return value


# What DEBUG falls back to; never accepted outside DEBUG.
DEV_SECRET_KEY = "spool-dev-only-not-secret"
SECRET_KEY_HELP = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
