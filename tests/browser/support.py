"""Shared bits of the browser tests: where Chromium is, how it starts, how a person signs in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium in a container: no sandbox (no user namespaces), no GPU, and nothing that
# would reach the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "correct horse battery staple"

browser_test = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (/usr/bin/chromium); .ci/run installs it",
    ),
]


@contextmanager
def sync_orm() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop running in this thread (in its own greenlet),
    which Django's ORM takes for async code and refuses. The ORM calls made inside are plain
    synchronous test code, so the check is lifted for their duration only."""
    name = "DJANGO_ALLOW_ASYNC_UNSAFE"
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def sign_in_admin(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def sign_in_playground(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/playground/")
    page.wait_for_url("**/playground/login/**")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/playground/")
