"""spool_client against a running server: forced disconnects and resume, sync and async, the proxy example."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from spool_client import (
    ContentDelta,
    Done,
    Error,
    Finish,
    ModelEngine,
    Result,
    Spool,
    SpoolError,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from spool_client.events import EventAssembler
from spool_client.sse import ServerSentEvent

from tests.e2e.helpers import NO_EOT, make_engine

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FIFTY = {"max_completion_tokens": 48, "seed": 23, **NO_EOT}  # 48 content + usage + finish = 50 chunks


# ---- a loopback proxy that cuts connections --------------------------------------------------


class CuttingProxy:
    """A TCP proxy in front of the server. Each accepted connection takes the next order from
    `plan` (none left: relay everything): `k` relays the response up to the end of its k-th SSE
    event and then drops the connection; `(k, "mid")` drops it halfway through event k+1."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.plan: list[Any] = []
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                order = self.plan.pop(0) if self.plan else None
            threading.Thread(target=self._serve, args=(client, order), daemon=True).start()

    def _serve(self, client: socket.socket, order: Any) -> None:
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        try:
            if order is None:
                _pipe(upstream, client)
            else:
                k, mid = (order[0], True) if isinstance(order, tuple) else (order, False)
                _relay_and_cut(upstream, client, k, mid=mid)
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


def _chunked_body(upstream: socket.socket, buffer: bytes) -> Iterator[bytes]:
    """The decoded pieces of a chunked HTTP body, as they arrive."""
    while True:
        while b"\r\n" not in buffer:
            buffer += upstream.recv(65536) or _eof()
        size_line, buffer = buffer.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return
        while len(buffer) < size + 2:
            buffer += upstream.recv(65536) or _eof()
        yield buffer[:size]
        buffer = buffer[size + 2 :]


def _eof() -> bytes:
    raise EOFError


def _relay_and_cut(upstream: socket.socket, client: socket.socket, k: int, *, mid: bool) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        head += upstream.recv(65536) or _eof()
    head, rest = head.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower(), head
    client.sendall(head + b"\r\n\r\n")

    def send(data: bytes) -> None:
        if data:
            client.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    pending, relayed = b"", 0
    if k == 0 and not mid:
        return
    for piece in _chunked_body(upstream, rest):
        pending += piece
        while (end := pending.find(b"\n\n")) >= 0:
            event, pending = pending[: end + 2], pending[end + 2 :]
            if relayed == k:  # mid: this is event k+1; send half of it, then cut
                send(event[: len(event) // 2])
                return
            send(event)
            relayed += 1
            if relayed == k and not mid:
                return
    raise AssertionError(f"the response ended before event {k}")


@pytest.fixture
def proxy(spool) -> Iterator[CuttingProxy]:
    cutter = CuttingProxy(spool.base_url)
    yield cutter
    cutter.close()


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(django_db_blocker) -> dict[str, str]:
    with django_db_blocker.unblock():
        return {
            "fast": make_engine("client-fast", tokens_per_second=0),
            "slow": make_engine("client-slow", tokens_per_second=100),
            "crawl": make_engine("client-crawl", tokens_per_second=20),
        }


@pytest.fixture
def client(spool) -> Iterator[Spool]:
    with Spool(spool.base_url, spool.alice.secret_key, retry_backoff=0) as made:
        yield made


@pytest.fixture(scope="module")
def fifty(spool, engines) -> tuple[str, list[Any], str]:
    """A finished 50-chunk job: (its id, its typed events read without a cut, its raw SSE text)."""
    with Spool(spool.base_url, spool.alice.secret_key) as direct:
        stream = direct.stream(engines["fast"], "tell me about windmills", parameters=FIFTY)
        events = list(stream.iter())
        raw = "".join(stream.iter_events())
    return stream.id, events, raw


def through(proxy: CuttingProxy, spool, **options: Any) -> Spool:
    """A client with its own connection pool, so its first connection takes the proxy's order."""
    return Spool(proxy.url, spool.alice.secret_key, retry_backoff=0, **options)


# ---- the 50-chunk stream, cut at every boundary -----------------------------------------------


def test_the_uninterrupted_stream_has_fifty_chunks_then_the_result(fifty):
    _, events, _ = fifty
    seqs = [e.seq for e in events if not isinstance(e, Result | Done)]
    assert seqs == list(range(50))
    assert [type(e) for e in events[-4:]] == [Usage, Finish, Result, Done]
    assert events[-3].reason == "length" and events[-2].status == "succeeded"
    assert events[-2].text == "".join(e.text for e in events if isinstance(e, ContentDelta))


def test_a_sync_stream_cut_at_every_event_boundary_resumes_with_the_identical_sequence(spool, proxy, fifty):
    job_id, expected, _ = fifty
    for k in range(52):  # after 0..49 chunks, after the last chunk, after the result
        proxy.plan, proxy.connections = [k], 0
        with through(proxy, spool) as cut:
            got = list(cut.events(job_id).iter())
        assert got == expected, f"cut after event {k}"
        assert proxy.connections == 2, f"cut after event {k}: the stream should have reconnected once"


def test_an_async_stream_cut_at_every_event_boundary_resumes_with_the_identical_sequence(spool, proxy, fifty):
    job_id, expected, _ = fifty

    async def run(k: int) -> list[Any]:
        async with through(proxy, spool) as cut:
            return [event async for event in cut.events(job_id).async_iter()]

    for k in range(52):
        proxy.plan, proxy.connections = [k], 0
        assert asyncio.run(run(k)) == expected, f"cut after event {k}"
        assert proxy.connections == 2, f"cut after event {k}"


def test_a_cut_in_the_middle_of_an_event_never_yields_half_of_it(spool, proxy, fifty):
    job_id, _, raw = fifty
    for k in (0, 1, 24, 49, 50, 51):
        proxy.plan, proxy.connections = [(k, "mid")], 0
        with through(proxy, spool) as cut:
            assert "".join(cut.events(job_id).iter_events()) == raw, f"cut inside event {k + 1}"
        assert proxy.connections == 2


def test_async_raw_events_survive_cuts_as_the_identical_text(spool, proxy, fifty):
    job_id, _, raw = fifty

    async def run() -> list[str]:
        texts = []
        for k in (3, (30, "mid"), 50):
            proxy.plan = [k]
            async with through(proxy, spool) as cut:
                texts.append("".join([text async for text in cut.events(job_id).async_iter_events()]))
        return texts

    assert asyncio.run(run()) == [raw] * 3


def test_a_running_job_cut_mid_stream_resumes_live_without_a_gap(spool, proxy, engines, client):
    for k in (1, 12, 30):
        job_id = client.create_job(engines["slow"], "the sea", parameters={**FIFTY, "seed": k})["id"]
        proxy.plan, proxy.connections = [k], 0
        with through(proxy, spool) as cut:
            got = list(cut.events(job_id).iter())
        assert proxy.connections == 2
        assert got == list(client.events(job_id).iter()), f"cut after event {k}"
        assert [e.seq for e in got if not isinstance(e, Result | Done)] == list(range(50))


def test_a_stream_that_cannot_reconnect_gives_up_after_its_retries(spool, proxy, fifty):
    proxy.plan = [0] * 10
    with through(proxy, spool, max_retries=3) as cut, pytest.raises(SpoolError) as raised:
        list(cut.events(fifty[0]).iter())
    assert raised.value.code == "connection_lost"
    assert proxy.connections == 4  # the first try and three retries


def test_a_refused_stream_is_not_retried(spool, proxy):
    with through(proxy, spool) as cut, pytest.raises(SpoolError) as raised:
        list(cut.events("00000000-0000-0000-0000-000000000000").iter())
    assert raised.value.status_code == 404 and raised.value.code == "job_not_found"
    assert proxy.connections == 1


# ---- the client's other calls ----------------------------------------------------------------


def test_text_is_choice_zero_content_on_both_paths(client, engines):
    stream = client.stream(
        engines["fast"], "hello", parameters={"max_completion_tokens": 12, "seed": 1, **NO_EOT}
    )
    text = stream.text()
    assert text and text == stream.result().text
    assert asyncio.run(stream.async_text()) == text
    assert client.job(stream.id)["result"]["choices"][0]["content"] == text


def test_an_async_stream_is_created_and_read_on_one_loop(client, engines):
    async def run() -> tuple[str, list[Any]]:
        stream = await client.async_stream(engines["fast"], messages=[{"role": "user", "content": "hi"}],
                                           parameters={"max_tokens": 6, "seed": 3, **NO_EOT})  # fmt: skip
        events = [event async for event in stream]
        await client.aclose()
        return stream.id, events

    job_id, events = asyncio.run(run())
    assert [e.seq for e in events if isinstance(e, ContentDelta)] == list(range(6))
    assert isinstance(events[-2], Result) and events[-2].id == job_id and isinstance(events[-1], Done)


def test_model_engine_ask_answers_like_ai_server_sdk(spool, engines):
    made = Spool(spool.base_url, spool.alice.secret_key)  # the default for engines given no client
    model = ModelEngine("client-fast")
    out = model.ask(
        "write me a paragraph about soccer", param_dict={"max_completion_tokens": 9, "seed": 2, **NO_EOT}
    )
    job = made.job(out["messageId"])
    assert out == {
        "response": job["result"]["choices"][0]["content"],
        "messageType": "CHAT",
        "messageId": job["id"],
        "numberOfTokensInPrompt": job["usage"]["input_tokens"],
        "numberOfTokensInResponse": 9,
    }
    prompt = {"full_prompt": "write me a paragraph about soccer", "max_completion_tokens": 9, "seed": 2}
    again = asyncio.run(ModelEngine(engines["fast"], made).async_ask(param_dict={**prompt, **NO_EOT}))
    assert again["response"] == out["response"]  # same seed, same prompt, same answer
    assert "".join(model.stream_ask("hi", param_dict={"max_tokens": 5, "seed": 4})) != ""
    made.close()


def test_cancel_ends_the_stream_with_a_cancelled_error_and_text_raises(client, engines):
    stream = client.stream(
        engines["crawl"], "a long tale", parameters={"max_completion_tokens": 2000, **NO_EOT}
    )
    events = []
    for event in stream.iter():
        events.append(event)
        if len(events) == 1:
            stream.cancel()
    assert isinstance(events[0], ContentDelta)
    error, result, done = events[-3:]
    assert isinstance(error, Error) and error.code == "cancelled"
    assert isinstance(result, Result) and result.status == "cancelled" and isinstance(done, Done)
    with pytest.raises(SpoolError) as raised:
        stream.text()
    assert raised.value.code == "cancelled"


def test_async_cancel_and_chunks_long_poll(client, engines):
    async def run() -> tuple[dict, dict]:
        stream = await client.async_stream(engines["crawl"], "x", parameters={"max_completion_tokens": 2000})
        page = await client.async_chunks(stream.id, wait=30)
        await stream.async_cancel()
        job = await client.async_wait(stream.id)
        await client.aclose()
        return page, job

    page, job = asyncio.run(run())
    assert page["chunks"] and page["chunks"][0]["seq"] == 0
    assert job["status"] == "cancelled"
    tail = client.chunks(job["id"], after=page["last_seq"])
    assert tail["chunks"][0]["seq"] == page["last_seq"] + 1 and tail["done"]


def test_server_errors_raise_spool_error_with_the_envelope(client, engines):
    with pytest.raises(SpoolError) as raised:
        client.create_job(engines["fast"], "x", parameters={"temperature": 5})
    error = raised.value
    assert (error.status_code, error.code, error.param) == (400, "decimal_above_max_value", "temperature")
    assert "temperature" in error.message and error.type == "invalid_request_error"
    with pytest.raises(SpoolError) as raised:
        Spool(client.base_url, "spool-sk-wrong").job("00000000-0000-0000-0000-000000000000")
    assert raised.value.status_code == 401


def test_embeddings_come_back_at_once_from_the_client_and_its_model_engine(client):
    from engine.offline.embedding import embed_text

    answer = client.embeddings("spool-offline", ["the king", "the queen"], dimensions=32)
    assert answer["object"] == "embeddings" and answer["dimensions"] == 32
    assert [len(v) for v in answer["embeddings"]] == [32, 32]
    model = ModelEngine("spool-offline", client)
    out = model.embeddings("the king", param_dict={"dimensions": 32})
    assert out["response"] == answer["embeddings"][:1] and out["numberOfTokensInResponse"] == 0
    assert out["numberOfTokensInPrompt"] > 0
    assert np.array_equal(np.array(out["response"][0], dtype=np.float32), embed_text("the king", 32))
    again = asyncio.run(model.async_embeddings(["the king"], param_dict={"dimensions": 32}))
    assert again == out
    with pytest.raises(SpoolError) as raised:
        client.embeddings("spool-offline", ["ok", ""])
    assert (raised.value.status_code, raised.value.param) == (400, "input[1]")


# ---- tool calls: fragments assembled, also across a reconnect -----------------------------------


def _tool_events() -> list[str]:
    chunks = [
        {"type": "tool", "data": {"index": 0, "id": "call_a", "name": "weather", "arguments": '{"ci'}},
        {"type": "tool", "data": {"index": 0, "arguments": 'ty": "Oslo"}'}},
        {"type": "tool", "data": {"index": 1, "id": "call_b", "name": "time"}},
        {"type": "tool", "data": {"index": 1, "arguments": "{}"}},
        {"type": "usage", "data": {"input_tokens": 3, "output_tokens": 4}},
        {"type": "finish", "data": {"finish_reason": "tool_calls"}},
    ]
    frames = [f"id: {n}\nevent: chunk\ndata: {json.dumps({'seq': n, **c})}\n\n" for n, c in enumerate(chunks)]
    job = {"id": "j", "status": "succeeded", "result": {"choices": []}}
    return [*frames, f"event: result\ndata: {json.dumps(job)}\n\n", "event: done\ndata: {}\n\n"]


def test_tool_call_fragments_are_assembled_into_complete_calls_across_a_reconnect():
    frames, requests = _tool_events(), []

    class CutAfter(httpx.SyncByteStream):
        def __init__(self, parts: list[str], cut: bool) -> None:
            self.parts, self.cut = parts, cut

        def __iter__(self) -> Iterator[bytes]:
            yield from (part.encode() for part in self.parts)
            if self.cut:
                raise httpx.RemoteProtocolError("peer closed connection")

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.headers.get("Last-Event-ID"))
        after = int(request.headers.get("Last-Event-ID", -1))
        first = len(requests) == 1
        parts = frames[after + 1 :][: 2 if first else None]  # the first connection dies after two
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=CutAfter(parts, first)
        )

    with Spool(
        "http://spool.test",
        "k",
        retry_backoff=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    ) as fake:  # noqa: E501
        events = list(fake.events("j").iter())
    assert requests == [None, "1"]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "call_a", "weather", '{"ci'),
        (0, None, None, 'ty": "Oslo"}'),
        (1, "call_b", "time", ""),
        (1, None, None, "{}"),
    ]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls == [
        ToolCall("call_a", "weather", '{"city": "Oslo"}', index=0),
        ToolCall("call_b", "time", "{}", index=1),
    ]
    assert calls[0].parsed_arguments() == {"city": "Oslo"}
    assert [type(e) for e in events[-5:]] == [ToolCall, ToolCall, Finish, Result, Done]


def test_unknown_event_types_and_comments_are_skipped():
    assembler = EventAssembler()
    assert assembler.feed(ServerSentEvent(event="future-thing", data="{}")) == []
    assert assembler.feed(ServerSentEvent(comment=" keep-alive")) == []


# ---- the README's proxy example ---------------------------------------------------------------


@pytest.fixture
def example(spool, engines, monkeypatch):
    path = ROOT / "client" / "examples" / "proxy.py"
    spec = importlib.util.spec_from_file_location("spool_proxy_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "spool", Spool(spool.base_url, spool.alice.secret_key))
    monkeypatch.setattr(module, "ENGINE", "client-fast")
    return module


def _frames(text: str) -> list[dict[str, str]]:
    frames = []
    for block in filter(None, text.split("\n\n")):
        frames.append(dict(line.split(": ", 1) for line in block.split("\n")))
    return frames


def test_the_readme_shows_the_proxy_example_as_it_is_in_the_repository():
    source = (ROOT / "client" / "examples" / "proxy.py").read_text()
    assert source in (ROOT / "README.md").read_text()


def test_the_proxy_example_relays_a_whole_stream_from_a_sync_view(example):
    from django.test import RequestFactory

    response = example.ask(RequestFactory().get("/ask", {"q": "tell me about windmills"}))
    assert response["Content-Type"] == "text/event-stream"
    frames = _frames(b"".join(response.streaming_content).decode())
    ids = [int(f["id"]) for f in frames if "id" in f]
    assert ids == list(range(len(ids))) and ids
    assert [f["event"] for f in frames[-2:]] == ["result", "done"]
    assert json.loads(frames[-2]["data"])["status"] == "succeeded"


def test_the_proxy_example_relays_from_async_views_and_resumes_after_last_event_id(example):
    from django.test import RequestFactory

    async def body(response) -> str:
        return "".join([part.decode() async for part in response.streaming_content])

    async def run() -> tuple[str, int, str]:
        whole = await body(await example.ask_async(RequestFactory().get("/ask", {"q": "the sea"})))
        frames = _frames(whole)
        job_id, last = json.loads(frames[-2]["data"])["id"], (len(frames) - 2) // 2
        request = RequestFactory().get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)})
        return whole, last, await body(await example.job_events(request, job_id))

    whole, last, resumed = asyncio.run(run())
    frames = _frames(whole)
    assert [f["event"] for f in frames[-2:]] == ["result", "done"]
    assert _frames(resumed) == frames[last + 1 :]
