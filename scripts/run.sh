#!/usr/bin/env bash
# Run Spool locally: the ASGI web server and a Celery worker, against local Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
CONCURRENCY="${SPOOL_WORKER_CONCURRENCY:-64}"

.venv/bin/python manage.py migrate --no-input -v0
.venv/bin/python manage.py spool_bootstrap
echo
echo "Spool: http://127.0.0.1:${PORT}/Monolith/api (SEMOSS)  http://127.0.0.1:${PORT}/admin/"
echo

# One process group: Ctrl-C (or either process dying) stops both.
trap 'trap - EXIT; kill 0 2>/dev/null' EXIT INT TERM
# Threads, not processes: generations are I/O-bound, so one worker runs many at once.
.venv/bin/celery -A config worker --pool threads --concurrency "$CONCURRENCY" \
  --without-gossip --without-mingle --loglevel INFO &
# Pollers reuse their connections between polls; a keep-alive longer than uvicorn's 5 s default
# keeps a client from racing the server's close when it reuses one. Django answers no ASGI lifespan.
.venv/bin/uvicorn config.asgi:application --host 127.0.0.1 --port "$PORT" --no-access-log --timeout-keep-alive 75 --lifespan off &
wait -n
