# The README names these targets. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install services run test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	$(VENV)/bin/pip install --quiet -e ./client
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/services.sh

run: install services
	bash scripts/run.sh

test: install services
	$(VENV)/bin/pytest

# mypy's Django plugin loads the settings, which want a real secret key outside DEBUG; type
# checking runs nothing, so DEBUG it is.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

bench: install services
	$(VENV)/bin/python -m bench.pipeline
