"""Browser fixtures: one headless Chromium for the session, a fresh page per test, people with
passwords, and a few thousand realistic stored completions beside the running server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, sync_orm


@pytest.fixture(autouse=True)
def orm_beside_playwright():
    with sync_orm():
        yield


@pytest.fixture
def pg(django_db_blocker):
    """Read and write the test database the running server uses (committed data, no rollback)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="session")
def people(spool, django_db_blocker) -> dict[str, str]:
    """An operator (staff) and a person who may only use the playground, with passwords."""
    from jobs import services

    with django_db_blocker.unblock(), sync_orm():
        operator = services.user_ensure(username="operator", staff=True)
        player = services.user_ensure(username="player")
        for user in (operator, player):
            user.set_password(PASSWORD)
            user.save()
    return {"operator": "operator", "player": "player"}


@pytest.fixture(scope="session")
def seeded(spool, django_db_blocker) -> int:
    """Realistic rows, so filters have keys and values to offer and pages look like real ones."""
    from django.core.management import call_command

    rows = 1500
    with django_db_blocker.unblock(), sync_orm():
        call_command("spool_seed_completions", rows, days=120, seed=11, stdout=io.StringIO())
    return rows


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is started, and Django refuses every synchronous ORM call under a running loop, so it
# must be stopped before the rest of the suite runs.
# It asks for the session's Spool only so that it is started first: started under Playwright's
# loop, its setup's ORM calls would be refused (a module with a Spool of its own may come first).
@pytest.fixture(scope="package")
def chromium(single_spool):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(headless=True, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def shots(spool) -> Path:
    """Where screenshots go: the run's artifacts."""
    path = spool.artifacts / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(chromium, spool):
    context = chromium.new_context(viewport={"width": 1440, "height": 960}, base_url=spool.base_url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
