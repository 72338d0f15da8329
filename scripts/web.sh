#!/usr/bin/env bash
# Start the ASGI web server (uvicorn on uvloop and httptools), configured from the environment.
# `make run`, docker compose, the benchmark and the end-to-end tests all start the web here.
#
#   SPOOL_WEB_HOST            address to listen on (127.0.0.1; 0.0.0.0 in the image)
#   PORT                      port (8000)
#   SPOOL_WEB_CONCURRENCY     web processes (default: one per core)
#   SPOOL_LOG_LEVEL           DEBUG, INFO, WARNING, ... (INFO)
#   SPOOL_LOG_FORMAT          text or json (text)
#   SPOOL_METRICS_DIR         where processes keep their metrics (${TMPDIR:-/tmp}/spool-metrics)
#   SPOOL_PYTHON              interpreter (.venv/bin/python if there, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SPOOL_PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then SPOOL_PYTHON=.venv/bin/python; else SPOOL_PYTHON=python3; fi
fi
workers="${SPOOL_WEB_CONCURRENCY:-$(nproc 2>/dev/null || echo 1)}"
# Prometheus metrics of every web process, summed at /metrics (jobs/metrics.py): a directory of
# this server's own, emptied at its start so a previous run's processes are not counted.
export PROMETHEUS_MULTIPROC_DIR="${SPOOL_METRICS_DIR:-${TMPDIR:-/tmp}/spool-metrics}/web-${PORT:-8000}"
rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
log_config=()
if [ "${SPOOL_LOG_FORMAT:-text}" = json ]; then
  # Django's LOGGING formats each web process's lines; this file, the supervisor's own.
  log_config=(--log-config config/uvicorn-log.json)
fi

# Pollers reuse their connections between polls; a keep-alive longer than uvicorn's 5 s default
# keeps a client from racing the server's close when it reuses one. Django answers no ASGI
# lifespan. Access lines are off: a poller makes one request per chunk batch, and the
# application logs what matters. With several workers uvicorn's supervisor forks them and
# restarts one that dies; exec keeps the signals of a stop going straight to it.
# The loop is uvloop taking in new connections in batches (config/webloop.py): uvloop's own
# takes one a turn, and a busy web left new clients waiting seconds in the kernel's queue.
# Refuse to start on settings that would make every request fail (jobs/redis_topology.py):
# the message names the setting. Django's check prints nothing else on stderr.
"$SPOOL_PYTHON" manage.py check --tag spool >/dev/null

exec "$SPOOL_PYTHON" -m uvicorn config.asgi:application \
  --host "${SPOOL_WEB_HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --workers "$workers" --loop config.webloop:new_event_loop --http httptools \
  --timeout-keep-alive 75 --lifespan off --no-access-log \
  --log-level "$(echo "${SPOOL_LOG_LEVEL:-INFO}" | tr '[:upper:]' '[:lower:]')" \
  "${log_config[@]}" \
  "$@"
