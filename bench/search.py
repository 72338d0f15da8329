"""Full-text search of stored completions at real sizes, every shape of the search syntax: words,
phrases (a set of two-word phrases of common words, matching and not), `or`, exclusions, metadata
terms; timed in the admin (Django's test client, as a staff user) and over HTTP
(`GET /v1/jobs/completions?q=` on a uvicorn started here, on loopback, stopped at the end).

    .venv/bin/python bench/search.py --rows 1000000 --label after

Reuses bench/dashboard.py's seeded database (its own name by default, so as not to disturb another
run) and writes docs/search-bench-<label>.json; docs/DASHBOARD.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import open_database, seed, staff_client  # noqa: E402

LIST = "/admin/jobs/storedcompletion/"
OWNER = "search-svc"  # the seeded owner with the most rows (about 18% of them)

# Two-word phrases of the corpus's commonest words (engine/offline/data/shakespeare.txt, which
# the seeded texts are cut from). These never stand together in the running text, so most have
# no match (the seeded excerpts can still join words a cut or a clamped position put side by
# side: the figures give the count found); the last two are the issue's own.
NEVER_TOGETHER = [
    "citizen good", "brutus menenius", "citizen marcius", "come coriolanus", "come shall",
    "brutus first", "citizen shall", "come god", "brutus would", "come love", "daughter lord",
    "good rome",
]  # fmt: skip
# These do, somewhere in the corpus: from a few matches to thousands.
TOGETHER = [
    "first citizen", "let us", "o god", "would love", "well good", "sir well", "us brutus",
    "upon one", "shall go", "senate noble", "good lord",
]  # fmt: skip
SHAPES: list[tuple[str, str, dict[str, str]]] = [
    ("word", "daughter", {}),
    ("common word", "lord", {}),
    ("rare word", "Antium", {}),
    ("two words", "daughter rome", {}),
    ("either word", "daughter or antium", {}),
    ("a word less one", "daughter -rome", {}),
    ("a word less itself", "lord -lord", {}),
    ("a phrase less a word", '"good lord" -rome', {}),
    ("word + metadata", "daughter", {"team": "legal"}),
    ("phrase + metadata", '"citizen good"', {"team": "legal"}),
    *[(f"phrase {p!r}", f'"{p}"', {}) for p in NEVER_TOGETHER],
    *[(f"phrase {p!r}", f'"{p}"', {}) for p in TOGETHER],
]


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(get: Any, repetitions: int) -> tuple[dict[str, float], Any]:
    get()  # warm: the first request of a shape reads its index pages from disk
    times, last = [], None
    for _ in range(repetitions):
        started = time.perf_counter()
        last = get()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(times, 0.5), 1), "p99_ms": round(percentile(times, 0.99), 1)}, last


def admin_url(text: str, metadata: dict[str, str]) -> str:
    terms = " ".join([text, *(f"{k}={v}" for k, v in metadata.items())])
    return f"{LIST}?{urlencode({'q': terms})}"


def count_said(body: str) -> str:
    found = re.search(r'<p class="paginator">(.*?)stored completion', body, re.S)
    return " ".join(found.group(1).split()[-3:]) if found else "?"


def start_web(database: str) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PORT": str(port),
        "SPOOL_WEB_HOST": "127.0.0.1",
        "SPOOL_WEB_CONCURRENCY": "1",
        "SPOOL_LOG_LEVEL": "WARNING",
        "SPOOL_PYTHON": sys.executable,
    }
    web = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "web.sh")], env=env, cwd=ROOT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(120):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return web, base
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(web.pid, signal.SIGTERM)
    raise SystemExit("the web server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="spool_search_bench")
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--label", default="after")
    parser.add_argument("--only", help="Only shapes whose name contains this.")
    args = parser.parse_args()

    rows = open_database(args.database)
    if rows < args.rows:
        rows = seed(args.rows, 1)

    import logging

    import httpx
    from django.contrib.auth import get_user_model

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the figures

    from jobs import services

    owner = get_user_model().objects.get(username=OWNER)
    _, secret = services.key_create(owner=owner, name="bench-search")
    client = staff_client()
    web, base = start_web(args.database)
    results: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=120) as http:
            for name, text, metadata in SHAPES:
                if args.only and args.only not in name:
                    continue
                url = admin_url(text, metadata)
                admin, body = timed(lambda url=url: client.get(url), args.repetitions)
                params = {"q": text, "limit": "100", "order": "desc"}
                params.update({f"metadata[{k}]": v for k, v in metadata.items()})
                api, answer = timed(
                    lambda p=params: http.get("/v1/jobs/completions", params=p), args.repetitions
                )
                assert answer.status_code == 200, answer.text
                page = answer.json()
                results[name] = {
                    "q": text,
                    "metadata": metadata,
                    "admin": {**admin, "count": count_said(body.content.decode())},
                    "http": {**api, "rows": len(page["data"]), "has_more": page["has_more"]},
                }
                print(
                    f"{name:38} admin p50 {admin['p50_ms']:7.1f} p99 {admin['p99_ms']:7.1f} "
                    f"({results[name]['admin']['count']:>16})  http p50 {api['p50_ms']:7.1f} "
                    f"p99 {api['p99_ms']:7.1f} ({len(page['data'])}{'+' if page['has_more'] else ''})",
                    flush=True,
                )
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
    environment = {
        "rows": rows,
        "owner_rows": owner.stored_completions.count(),
        "repetitions": args.repetitions,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = ROOT / "docs" / f"search-bench-{args.label}.json"
    out.write_text(json.dumps({"environment": environment, "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}; load average {environment['load_average']}")


if __name__ == "__main__":
    main()
