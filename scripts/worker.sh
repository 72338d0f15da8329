#!/usr/bin/env bash
# Start one Celery worker process, configured from the environment. `make run`, docker compose,
# the benchmark and the end-to-end tests all start workers here, so the worker's command line
# lives in this one place. Run several (each its own process, same queue) to add capacity.
#
#   SPOOL_CELERY_QUEUE        queue to consume (celery; read by config/settings.py, which makes
#                             it the default queue, so the web sends jobs to the same one)
#   SPOOL_WORKER_CONCURRENCY  generations one process carries at once (256)
#   SPOOL_WORKER_POOL         loop (a job's task on the event loop) or threads (config/spool.py)
#   SPOOL_LOG_LEVEL           DEBUG, INFO, WARNING, ... (INFO)
#   SPOOL_LOG_FORMAT          text or json (text)
#   SPOOL_WORKER_METRICS_PORT the worker's Prometheus exporter (config/settings.py; 0: none)
#   SPOOL_METRICS_DIR         where processes keep their metrics (${TMPDIR:-/tmp}/spool-metrics)
#   SPOOL_PYTHON              interpreter (.venv/bin/python if there, else python3)
#   SPOOL_WORKER_MAIN         module run as `python -m` in place of celery's own, for an
#                             instrumented run (the benchmark's bench.workershim); it must take
#                             celery's arguments
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SPOOL_PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then SPOOL_PYTHON=.venv/bin/python; else SPOOL_PYTHON=python3; fi
fi

# Prometheus metrics (jobs/metrics.py): the workers of one queue on one host share a directory,
# and whichever of them holds SPOOL_WORKER_METRICS_PORT serves the sum. Not emptied here: other
# workers may be writing to it; a starting worker drops the live gauges of dead ones instead.
export PROMETHEUS_MULTIPROC_DIR="${SPOOL_METRICS_DIR:-${TMPDIR:-/tmp}/spool-metrics}/worker-${SPOOL_CELERY_QUEUE:-celery}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# In JSON mode only log lines reach the output: no start-up banner.
quiet=()
if [ "${SPOOL_LOG_FORMAT:-text}" = json ]; then quiet=(--quiet); fi

# The pool is SPOOL_WORKER_POOL's (config/settings.py): by default a job's task runs on the
# process's one event loop (jobs/worker/pool.py), other tasks on threads. The concurrency is the
# number of generations this process carries, and prefetch (1 per slot) takes a new job exactly
# when a slot is free.
# No gossip or mingle: workers never talk to each other, and both cost start-up time.
# exec: the worker is this process, so a signal sent to it (Ctrl-C, docker stop, SIGKILL in the
# fault tests) reaches celery itself.
# Refuse to start on settings that would make every request fail (jobs/redis_topology.py):
# the message names the setting. Django's check prints nothing else on stderr.
"$SPOOL_PYTHON" manage.py check --tag spool >/dev/null

exec "$SPOOL_PYTHON" -m "${SPOOL_WORKER_MAIN:-celery}" -A config "${quiet[@]}" worker \
  --concurrency "${SPOOL_WORKER_CONCURRENCY:-256}" \
  --without-gossip --without-mingle \
  --loglevel "${SPOOL_LOG_LEVEL:-INFO}" \
  "$@"
