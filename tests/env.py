"""Loaded with `-p tests.env` (pyproject addopts) before Django's settings are read. Each test
run gets its own test database, Redis key prefix and Celery queue, so runs on one machine never
meet, and never touch a development server's data."""

import os

run = os.environ.setdefault("SPOOL_TEST_RUN", str(os.getpid()))
os.environ["REDIS_URL"] = os.environ.get("SPOOL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["SPOOL_REDIS_PREFIX"] = f"spooltest{run}"
os.environ["SPOOL_CELERY_QUEUE"] = f"spooltest{run}"
os.environ["SPOOL_TEST_DATABASE"] = f"test_spool_{run}"
# Outside DEBUG Spool refuses to start without a real key; the servers the tests start inherit it.
os.environ.setdefault("DJANGO_SECRET_KEY", "spool-test-suite-only-key-0123456789-abcdefghijklmnopqrstuvwxyz")
