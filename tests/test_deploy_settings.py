"""Outside DEBUG Spool refuses a made-up secret key; the SPOOL_HTTPS profile passes check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SECRET_KEY", "DJANGO_DEBUG"}}
    # No fallback file either: a developer's run/secret-key must not make this pass.
    base["SPOOL_SECRET_KEY_FILE"] = str(tmp_path / "no-such-file")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    done = manage(tmp_path, "check")
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in done.stderr
    assert "DJANGO_DEBUG off" in done.stderr


def test_it_refuses_the_old_default_key_and_a_short_one(tmp_path):
    old = manage(tmp_path, "check", DJANGO_SECRET_KEY="spool-dev-only-not-secret")
    assert old.returncode != 0 and "DJANGO_SECRET_KEY is not set" in old.stderr
    short = manage(tmp_path, "check", DJANGO_SECRET_KEY="hunter2")
    assert short.returncode != 0 and "DJANGO_SECRET_KEY is too weak" in short.stderr


def test_debug_starts_without_a_key(tmp_path):
    done = manage(tmp_path, "check", DJANGO_DEBUG="1")
    assert done.returncode == 0, done.stderr


def test_it_reads_the_key_make_run_keeps_in_a_file(tmp_path):
    key_file = tmp_path / "secret-key"
    key_file.write_text(STRONG_KEY + "\n")
    done = manage(tmp_path, "check", SPOOL_SECRET_KEY_FILE=str(key_file))
    assert done.returncode == 0, done.stderr


def test_the_https_profile_passes_check_deploy_with_nothing_to_report(tmp_path):
    done = manage(
        tmp_path, "check", "--deploy", "--fail-level", "DEBUG", DJANGO_SECRET_KEY=STRONG_KEY, SPOOL_HTTPS="1"
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_without_the_profile_check_deploy_names_what_is_missing(tmp_path):
    done = manage(tmp_path, "check", "--deploy", DJANGO_SECRET_KEY=STRONG_KEY)
    assert "security.W004" in done.stderr  # HSTS; the profile's test above is not vacuous
