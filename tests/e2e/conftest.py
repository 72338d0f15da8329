"""End-to-end fixtures: direct (non-transactional) database access beside the running server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import fakeupstream
from tests.e2e.openai_helpers import upstream_engine

pytestmark = pytest.mark.e2e


def pytest_generate_tests(metafunc):
    """A test marked `cluster` runs twice: against the Spool on one Redis, and against one whose
    chunk log is on a 3-master Redis Cluster (tests/cluster.py)."""
    if metafunc.definition.get_closest_marker("cluster") and "spool" in metafunc.fixturenames:
        metafunc.parametrize("spool", ["redis", "cluster"], indirect=True, scope="session")


@pytest.fixture
def pg(django_db_blocker):
    """Read and write the test database the running server uses (committed data, no rollback)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The fake OpenAI-compatible upstream (fakeupstream), for this module; its base URL."""
    with fakeupstream.running(port=0) as url:
        yield url


@pytest.fixture
def engine_for(upstream, pg):
    """An engine on the fake upstream playing a scenario; returns its model name."""

    def make(scenario: str) -> str:
        return upstream_engine(f"fake-{uuid.uuid4().hex[:8]}", upstream, scenario)

    return make
