"""A browser page on another origin uses Spool directly: CORS lets it in (and keeps other origins
out), and a read token in the URL lets its EventSource, which cannot send an Authorization
header, stream a job; the connection is cut mid-stream and the browser resumes with
Last-Event-ID, with no chunk lost or repeated."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import httpx
import pytest

from harness.processes import free_port
from tests.browser.support import browser_test, sync_orm
from tests.e2e.helpers import NO_EOT, make_engine
from tests.faults import CuttableProxy
from tests.servers import Spool, running_spool

pytestmark = browser_test

# The page a frontend on another origin would serve: it streams the job named in its URL with an
# EventSource and keeps what it saw where the test can read it.
PAGE = b"""<!doctype html><meta charset="utf-8"><title>another origin</title>
<script>
const seen = (window.seen = {chunks: [], opens: 0, dropped: 0, result: null, done: false});
const source = new EventSource(new URLSearchParams(location.search).get("src"));
source.onopen = () => seen.opens++;
const chunk = (e) => seen.chunks.push({id: e.lastEventId, chunk: JSON.parse(e.data)});
source.addEventListener("chunk", chunk);
source.addEventListener("error", (e) => (e.data ? chunk(e) : seen.dropped++));
source.addEventListener("result", (e) => (seen.result = JSON.parse(e.data)));
source.addEventListener("done", () => { seen.done = true; source.close(); });
</script>"""


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


def serve_page() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(an origin Spool allows, one it does not): two loopback ports serving the page."""
    allowed, other = serve_page(), serve_page()
    try:
        yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in (allowed, other))  # type: ignore[misc]
    finally:
        for server in (allowed, other):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def spool(django_db_setup, django_db_blocker, tmp_path_factory, origins, chromium) -> Iterator[Spool]:
    """A Spool that lets the first origin in. Started beside Playwright's loop (sync_orm), but
    the servers must not inherit the lifted check: the variable is set empty for them."""
    with contextlib.ExitStack() as stack:
        with sync_orm():
            running = stack.enter_context(
                running_spool(
                    django_db_blocker,
                    tmp_path_factory.mktemp("cors-logs"),
                    SPOOL_CORS_ALLOWED_ORIGINS=origins[0],
                    DJANGO_ALLOW_ASYNC_UNSAFE="",
                )
            )
        yield running


@pytest.fixture
def proxy(spool) -> CuttableProxy:
    """The API as the browser reaches it, through a connection that can be cut."""
    return CuttableProxy(int(spool.base_url.rsplit(":", 1)[1]))


def start_job(spool: Spool, engine: str, tokens: int) -> tuple[str, str]:
    """A job of alice's, and a read token for it, as the page's own backend would make them."""
    keyed = httpx.Client(
        base_url=spool.base_url, headers={"Authorization": f"Bearer {spool.alice.secret_key}"}, timeout=30
    )
    job = keyed.post(
        "/v1/jobs",
        json={"engine": engine, "command": "Tell me of the king.",
              "parameters": {"max_completion_tokens": tokens, **NO_EOT}},
    ).json()  # fmt: skip
    token = keyed.post(f"/v1/jobs/{job['id']}/read_tokens", json={"expires_in": 120}).json()["token"]
    return job["id"], token


def test_an_eventsource_on_another_origin_resumes_a_cut_stream_with_no_chunk_lost_or_repeated(
    spool, chromium, origins, proxy, pg
):
    engine = make_engine("browser-cross-origin", tokens_per_second=12)
    job_id, token = start_job(spool, engine, 48)
    src = f"http://127.0.0.1:{proxy.port}/v1/jobs/{job_id}/events?" + urlencode({"token": token})
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{origins[0]}/?" + urlencode({"src": src}))
        page.wait_for_function("window.seen.chunks.length >= 8")
        proxy.cut()  # mid-stream: the job is still running
        proxy.restore()
        page.wait_for_function("window.seen.done", timeout=60_000)
        seen = page.evaluate("window.seen")
    finally:
        context.close()

    assert seen["opens"] == 2 and seen["dropped"] >= 1  # the browser reconnected on its own
    ids = [int(c["id"]) for c in seen["chunks"]]
    assert ids == list(range(len(ids)))  # nothing repeated, nothing skipped
    assert [c["chunk"]["seq"] for c in seen["chunks"]] == ids
    assert seen["chunks"][-1]["chunk"]["type"] == "finish"
    streamed = "".join(c["chunk"]["data"].get("content", "") for c in seen["chunks"])
    assert streamed == seen["result"]["result"]["choices"][0]["content"]
    assert seen["result"]["usage"]["output_tokens"] == 48


def test_a_page_on_an_allowed_origin_may_call_the_api_with_a_key_and_another_may_not(
    spool, chromium, origins
):
    call = """async ([url, key]) => {
        try {
            const r = await fetch(url, {method: "POST", headers: {"Authorization": "Bearer " + key,
                "Content-Type": "application/json"}, body: JSON.stringify({engine: "spool-offline",
                command: "Speak.", parameters: {max_completion_tokens: 2}})});
            return {status: r.status, location: r.headers.get("Location"), body: await r.json()};
        } catch (e) { return {failed: e.name}; }
    }"""
    context = chromium.new_context()
    try:
        page = context.new_page()
        answers = []
        for origin in origins:
            page.goto(origin + "/")
            answers.append(page.evaluate(call, [f"{spool.base_url}/v1/jobs", spool.alice.secret_key]))
    finally:
        context.close()
    allowed, other = answers
    # A preflighted request (Authorization, JSON): the browser asked first and was let in.
    assert allowed["status"] == 202 and allowed["location"] == f"/v1/jobs/{allowed['body']['id']}"
    assert other == {"failed": "TypeError"}  # the browser kept the answer from the page


def test_preflight_and_answers_carry_cors_headers_for_allowed_origins_only(spool, origins):
    allowed, other = origins
    ask = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,last-event-id",
    }
    url = f"{spool.base_url}/v1/jobs/x/events"
    ok = httpx.options(url, headers={"Origin": allowed, **ask})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == allowed
    assert {"authorization", "last-event-id"} <= set(ok.headers["access-control-allow-headers"].split(", "))
    assert (
        "GET" in ok.headers["access-control-allow-methods"] and ok.headers["access-control-max-age"] == "600"
    )
    assert "access-control-allow-credentials" not in ok.headers
    assert "access-control-allow-origin" not in httpx.options(url, headers={"Origin": other, **ask}).headers
    # A page may place the jobs it starts, and tell a replay from a new job.
    placing = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,idempotency-key,x-spool-queue-timeout",
    }
    placed = httpx.options(f"{spool.base_url}/v1/jobs", headers={"Origin": allowed, **placing})
    assert {"idempotency-key", "x-spool-queue-timeout", "x-spool-run-timeout"} <= set(
        placed.headers["access-control-allow-headers"].split(", ")
    )

    semoss = httpx.post(f"{spool.semoss}/engine/status", data={"jobId": "x"}, headers={"Origin": allowed})
    assert semoss.status_code == 401 and semoss.headers["access-control-allow-origin"] == allowed
    assert "origin" in semoss.headers["vary"].lower()
    assert {"x-spool-job-id", "idempotent-replayed"} <= set(
        semoss.headers["access-control-expose-headers"].split(", ")
    )
    # The admin and the playground are not for other origins.
    admin = httpx.get(f"{spool.base_url}/admin/login/", headers={"Origin": allowed})
    assert "access-control-allow-origin" not in admin.headers
