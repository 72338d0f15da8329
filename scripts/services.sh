#!/usr/bin/env bash
# Start the local Postgres and Redis when they are not answering (a fresh machine, or after a
# reboot), and RabbitMQ too where it is installed (the tests run the worker on it as well),
# and make sure the `spool` database exists. Safe to run again.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! pg_up; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
fi
if ! rabbitmq_up && command -v rabbitmq-server >/dev/null; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached
  for _ in $(seq 1 60); do rabbitmq_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
redis_up || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }

PGUSER="${PGUSER:-postgres}"
# Each running Spool holds up to SPOOL_DB_POOL_SIZE (32) connections per web and per worker
# process, and the test suite runs a few Spools at once (the session's two and a module's own):
# Postgres's default of 100 connections is not enough for them. Raised once, with a restart.
MIN_CONNECTIONS=300
connections=$(psql -h 127.0.0.1 -U "$PGUSER" -tAc "SHOW max_connections" postgres)
if [ "$connections" -lt "$MIN_CONNECTIONS" ] && [ -d /etc/postgresql ]; then
  echo "raising PostgreSQL's max_connections from $connections to $MIN_CONNECTIONS (restart)" >&2
  psql -h 127.0.0.1 -U "$PGUSER" -qc "ALTER SYSTEM SET max_connections = $MIN_CONNECTIONS" postgres
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main restart
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U "$PGUSER" -tAc "SELECT 1 FROM pg_database WHERE datname='spool'" postgres | grep -q 1; then
  createdb -h 127.0.0.1 -U "$PGUSER" spool
fi
