#!/usr/bin/env bash
# The ranges that matter tried at both ends: each library below at the lowest and at the newest
# release its range allows, everything else as the lock says. httpx, for the client package
# (client/ is a library: ranges, no lock); redis-py, whose cluster client raises its outages in
# ways that change between releases (jobs/redis_clients.py). The servers these tests start run
# from the same environment, so Spool runs at that end of the range too.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
uv=$PWD/.venv/bin/uv

# The range pyproject.toml gives a dependency: `spec FILE NAME`.
spec() {
  "$PYTHON" - "$1" "$2" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
name = sys.argv[2]
print(next(re.sub(r"^[A-Za-z0-9_.-]+", "", d) for d in deps if re.match(rf"{re.escape(name)}\b", d)))
PY
}
# The client's range, within Spool's own: the servers the tests start share the environment.
httpx="httpx$(spec client/pyproject.toml httpx),$(spec pyproject.toml httpx | sed 's/^[^<]*,//')"
redis="redis$(spec pyproject.toml redis)"

for end in lowest newest; do
  venv=$PWD/.venv-$end
  [ -x "$venv/bin/python" ] || "$uv" venv --quiet --python "$PYTHON" "$venv"
  export VIRTUAL_ENV=$venv
  "$uv" pip sync --quiet --require-hashes requirements-dev.lock
  "$uv" pip install --quiet --no-deps -e . -e ./client
  resolution=$([ "$end" = lowest ] && echo lowest-direct || echo highest)
  "$uv" pip install --quiet --upgrade --resolution "$resolution" "$httpx" "$redis"
  echo "== $end of the ranges ($httpx, $redis): $("$uv" pip freeze | grep -E '^(httpx|redis)==' | tr '\n' ' ')"
  "$venv/bin/pytest" -q -p no:cacheprovider tests/client tests/jobs/test_cluster_recovery.py \
    tests/jobs/test_redis_clients.py tests/jobs/test_chunklog.py tests/jobs/test_health.py \
    tests/test_redis_topology.py
done
