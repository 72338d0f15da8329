# Spool's image: web and worker alike (docker-compose.yml picks the role by command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Dependencies first, in their own layer: a change to Spool's code does not reinstall them.
# Exactly the runtime lock, every file checked against its hash (README, "Upgrading"); uv is the
# one the dev lock names, installed beside the image's Python, not in Spool's venv.
RUN python -m venv /opt/venv
WORKDIR /app
COPY requirements.lock requirements-dev.lock ./
RUN /usr/local/bin/pip install "uv==$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements-dev.lock)" \
    && /usr/local/bin/uv pip sync --python /opt/venv/bin/python --require-hashes --no-cache requirements.lock

# Spool runs from its source tree, as `make run` does (scripts/ cd to it).
COPY manage.py ./
COPY config ./config
COPY engine ./engine
COPY jobs ./jobs
COPY fakeupstream ./fakeupstream
COPY scripts ./scripts

# Static files at build time. Settings refuse to load without a real key outside DEBUG; this
# throwaway one exists for this command only and is in no layer's environment.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
      python manage.py collectstatic --no-input -v0

# Not root. run/ is where spool_bootstrap keeps the development key pair, and run/data the Batch
# API's files (SPOOL_DATA_DIR): made here so that a volume mounted there belongs to spool.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin spool \
    && mkdir -p /app/run/data && chown -R spool /app/run
USER spool

# The settings of a container: listen on every interface, one JSON object per log line, a
# heartbeat file for the worker's liveness probe (scripts/worker-alive.sh).
ENV SPOOL_WEB_HOST=0.0.0.0 \
    PORT=8000 \
    SPOOL_LOG_FORMAT=json \
    SPOOL_WORKER_HEARTBEAT_FILE=/tmp/spool-worker.alive
EXPOSE 8000
CMD ["bash", "scripts/web.sh"]
