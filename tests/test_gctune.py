"""The web and worker processes take their start-up objects out of the garbage collector's scans
(config/gctune.py), unless SPOOL_GC_FREEZE is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REPORT = "import gc, json, sys; print(json.dumps([gc.get_freeze_count(), sorted(sys.modules)]))"


def frozen_after(setup: str, **env: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", f"{setup}\n{REPORT}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    frozen, modules = json.loads(done.stdout.splitlines()[-1])
    return frozen, modules


def test_the_web_process_freezes_what_it_loaded_views_included():
    frozen, modules = frozen_after("import config.asgi", SPOOL_GC_FREEZE="1")
    # Django, the apps and the libraries: far more than any interpreter starts with.
    assert frozen > 50_000
    assert "jobs.faces.semoss.views" in modules  # imported before the freeze, not by a request


def test_off_freezes_nothing():
    frozen, _ = frozen_after("import config.asgi", SPOOL_GC_FREEZE="0")
    assert frozen == 0


def test_the_worker_freezes_what_it_loaded_once_it_is_ready():
    setup = "import django; django.setup()\nimport jobs.worker_hooks\n"
    frozen, _ = frozen_after(setup + "jobs.worker_hooks._freeze_startup_objects()\n", SPOOL_GC_FREEZE="1")
    assert frozen > 50_000
