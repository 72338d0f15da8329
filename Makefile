# The README names these targets. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
UV := $(VENV)/bin/uv
# Two locks, one resolution: what Spool needs to run (the Docker image installs this one), and
# that plus the tools of development and tests (make install), held to the same versions.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The uv that reads the locks is the one the dev lock names, so a version is written in one place.
UV_VERSION = $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(DEV_LOCK))
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
# How the locks are written: one resolution for every platform and Python from 3.11, the hash of
# every file, no download address (the index is the installer's own configuration, so a mirror
# works). Each keeps the versions its output file already pins unless told to --upgrade.
COMPILE = $(UV) pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--no-emit-package spool-client --custom-compile-command "make lock" --quiet
COMPILE_DEV = $(COMPILE) --group dev --constraint $(LOCK)

.PHONY: install lock upgrade services run test test-bounds lint bench

# Exactly what the dev lock says, each file checked against its hash, and nothing else: `pip
# sync` removes what the lock does not name. Spool and its client (client/, whose dependencies
# the lock holds) go in editable, on top.
$(STAMP): $(DEV_LOCK) pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip sync --quiet --require-hashes $(DEV_LOCK)
	$(UV) pip install --quiet --no-deps -e . -e ./client
	touch $(STAMP)

install: $(STAMP)

# After a change to pyproject.toml: the locks follow it, moving nothing they need not move.
lock: install
	$(COMPILE) -o $(LOCK)
	$(COMPILE_DEV) -o $(DEV_LOCK)

# Moves the locks to the newest versions pyproject.toml allows and installs them. Commit them
# only once `make lint` and `make test` pass on them (README, "Upgrading").
upgrade: install
	$(COMPILE) --upgrade -o $(LOCK)
	$(COMPILE_DEV) --upgrade -o $(DEV_LOCK)
	$(MAKE) install

services:
	bash scripts/services.sh

run: install services
	bash scripts/run.sh

test: install services
	$(VENV)/bin/pytest

# The client's httpx and Spool's redis-py at the lowest and the newest releases their ranges allow
# (client/ is a library: ranges, no lock), in .venv-lowest and .venv-newest.
test-bounds: install services
	bash scripts/test-bounds.sh

# mypy's Django plugin loads the settings, which want a real secret key outside DEBUG; type
# checking runs nothing, so DEBUG it is. First: locks that no longer match pyproject.toml.
lint: install
	@cp $(LOCK) $(VENV)/lock-check && $(COMPILE) -o $(VENV)/lock-check
	@cp $(DEV_LOCK) $(VENV)/dev-lock-check && $(COMPILE_DEV) -o $(VENV)/dev-lock-check
	@cmp -s $(LOCK) $(VENV)/lock-check && cmp -s $(DEV_LOCK) $(VENV)/dev-lock-check \
		|| { echo "The locks do not match pyproject.toml: run make lock" >&2; exit 1; }
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install services
	$(VENV)/bin/python -m bench.pipeline
