#!/usr/bin/env bash
# Run Spool locally: the ASGI web server and a Celery worker, against local Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

export PORT="${PORT:-8000}"
mkdir -p run
# Outside DEBUG Spool refuses to start on a made-up secret key; a development machine gets a
# random one, made once and kept beside the dev keys so sessions survive a restart.
if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
  if [ ! -s run/secret-key ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' >run/secret-key)
  fi
  DJANGO_SECRET_KEY="$(cat run/secret-key)"
  export DJANGO_SECRET_KEY
fi

.venv/bin/python manage.py migrate --no-input -v0
.venv/bin/python manage.py spool_bootstrap
echo
echo "Spool: http://127.0.0.1:${PORT}/Monolith/api (SEMOSS)  http://127.0.0.1:${PORT}/admin/"
echo

# One process group: Ctrl-C (or either process dying) stops both.
trap 'trap - EXIT; kill 0 2>/dev/null' EXIT INT TERM
bash scripts/worker.sh &
bash scripts/web.sh &
wait -n
