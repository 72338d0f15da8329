"""End-to-end fixtures: direct (non-transactional) database access beside the running server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg(django_db_blocker):
    """Read and write the test database the running server uses (committed data, no rollback)."""
    with django_db_blocker.unblock():
        yield
