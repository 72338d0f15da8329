"""The Postgres proxy of the fault tests knows a statement when it runs, prepared or not: a
prepared statement runs by name, its text sent once with its Parse."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from tests.faults import CuttableProxy

pytestmark = pytest.mark.django_db(transaction=True)
COUNTED = b"nextval('spool_test_counted')"


@pytest.fixture
def through_proxy() -> Iterator[tuple[CuttableProxy, dict]]:
    params = connections.create_connection(DEFAULT_DB_ALIAS).get_connection_params()
    params.pop("cursor_factory")
    with psycopg.connect(**params, autocommit=True) as direct:
        direct.execute("CREATE SEQUENCE spool_test_counted")
        proxy = CuttableProxy(int(params.get("port") or 5432))
        try:
            yield proxy, {**params, "host": "127.0.0.1", "port": proxy.port, "prepare_threshold": 5}
        finally:
            proxy.restore()
            direct.execute("DROP SEQUENCE spool_test_counted")


def times_counted(params: dict) -> int:
    with psycopg.connect(**params) as conn:
        query = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM spool_test_counted"
        (value,) = conn.execute(query).fetchone()  # type: ignore[misc]
        return value


@pytest.mark.parametrize(
    ("prepare", "runs_before"),
    [(False, 0), (True, 0), (True, 2)],
    ids=["unprepared", "prepared-by-this-run", "run-by-name"],
)
def test_the_answer_lost_is_the_statements_own_run(through_proxy, prepare, runs_before):
    proxy, params = through_proxy
    with psycopg.connect(**params, autocommit=True) as conn:
        for _ in range(runs_before):
            conn.execute(f"SELECT {COUNTED.decode()}", prepare=prepare)
        proxy.lose_answer_to(COUNTED)
        # Not the answer to its preparing (the statement not run yet): to its run.
        with pytest.raises(psycopg.OperationalError):
            conn.execute(f"SELECT {COUNTED.decode()}", prepare=prepare)
    assert proxy.answer_lost.is_set()
    proxy.restore()
    assert times_counted(params) == runs_before + 1  # the statement was done, its client not told
