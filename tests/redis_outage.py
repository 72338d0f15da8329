"""A Redis outage for a test: the chunk log's Redis pointed at a loopback port nobody listens on,
so every call fails as when Redis is down (connection refused), then the clients built again."""

from __future__ import annotations

import pytest

from harness.processes import free_port
from jobs import redis_clients


@pytest.fixture
def redis_down(spool_env):
    redis_clients.forget_clients()
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=False)
    yield
    redis_clients.forget_clients()
