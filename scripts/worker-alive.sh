#!/usr/bin/env bash
# Liveness probe of a worker (a container's healthcheck): exits 0 while the worker has touched
# its heartbeat file within SPOOL_WORKER_ALIVE_SECONDS (30), 1 otherwise, saying why. Cheap on
# purpose: no Python start, no broker round trip (remote control is off; see config/settings.py).
set -euo pipefail

file="${SPOOL_WORKER_HEARTBEAT_FILE:?SPOOL_WORKER_HEARTBEAT_FILE is not set: the worker reports no liveness}"
max="${SPOOL_WORKER_ALIVE_SECONDS:-30}"
if [ ! -e "$file" ]; then
  echo "worker not alive: $file does not exist (not started yet, or stopped)" >&2
  exit 1
fi
age=$(( $(date +%s) - $(stat -c %Y "$file") ))
if [ "$age" -gt "$max" ]; then
  echo "worker not alive: $file last touched ${age} s ago (more than ${max} s)" >&2
  exit 1
fi
echo "worker alive: heartbeat ${age} s ago"
