"""jobs/dbpool.py: after an outage, a pool's idle connections tested by one check at a time, on a
thread of its own, whose failure reaches no caller."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory
from psycopg_pool import ConnectionPool

from jobs import dbpool
from jobs.faces.common.errors import error_response

pytestmark = pytest.mark.django_db


class FailingCheck(ConnectionPool):
    """A real pool on the test database whose check waits to be let go, then fails."""

    def __init__(self) -> None:
        super().__init__(
            kwargs={**connection.get_connection_params(), "autocommit": True}, min_size=1, open=True
        )
        self.checking, self.let_go, self.checks = threading.Event(), threading.Event(), 0

    def check(self) -> None:
        self.checks += 1
        self.checking.set()
        self.let_go.wait(10)
        raise RuntimeError("the check itself failed")


def start_check(pool: ConnectionPool) -> None:
    """Start a check of pool once the one under way (an earlier test's, say) has ended."""
    deadline = time.monotonic() + 10
    while not dbpool.check_idle_connections(pool):
        assert time.monotonic() < deadline, "a check under way never ended"
        time.sleep(0.05)


def test_one_check_runs_at_a_time_and_its_failure_reaches_no_request():
    pool = FailingCheck()
    try:
        start_check(pool)
        assert pool.checking.wait(10), "Postgres answers: the check runs"
        # Outages met meanwhile start no other, and answer their 503 as ever.
        assert not dbpool.check_idle_connections(pool)
        request = RequestFactory().get("/v1/chat/completions")
        assert error_response(request, OperationalError("server closed the connection")).status_code == 503
        pool.checking.clear()
        pool.let_go.set()
        start_check(pool)  # once the failed one has ended
        assert pool.checking.wait(10) and pool.checks == 2
    finally:
        pool.let_go.set()
        pool.close()
