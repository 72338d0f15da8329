"""The guards of every patch of a library's internals (jobs/compat/, engine/compat.py, and the
cluster client's slot-map flag in jobs/redis_clients.py). Each digest is of the library code a
patch copies, replaces or relies on, as installed from the lock: an upgrade that changes it fails
here, naming the patch to bring up to date (then the digest). pyproject.toml bounds each library
below its next minor release for the same reason."""

from __future__ import annotations

import asyncio
import hashlib
import inspect

import aiohttp
import httpx
import pytest
import redis.asyncio as aioredis
from adrf.views import APIView
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.deprecation import MiddlewareMixin
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterPipeline, RedisCluster
from rest_framework.request import Request

from engine.compat import mark_connector_closed

GUARDED = [
    # (the library's code, its digest, the patch that depends on it)
    (
        ASGIHandler.handle,
        "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323",
        "jobs/compat/asgi_handler.py: a copy with its changes marked",
    ),
    (
        MiddlewareMixin.__acall__,
        "adf8cbcaf9f11e45c4ac1953556ac422f2a6fe4193df5edbed186b2b66bea729",
        "jobs/compat/onloop.py: _acall_inline replaces it on the stock middleware",
    ),
    (
        CsrfViewMiddleware.process_view,
        "cdbdabe04318fc2f1d7196480b258c9d486a79011947772c54320a5ea7d16c1f",
        "jobs/compat/onloop.py: called inline from an async process_view",
    ),
    (
        SyncToAsync.__call__,
        "6376e33c6d3d94c58df80c3f2386c38401d19a543d08626a34721abe309845f6",
        "jobs/compat/asgiref_threads.py: reads the executor map this fills",
    ),
    (
        APIView.async_dispatch,
        "5926f734eb685633df0c80f431d70f15451e7c57b464fec59295c94db9b10718",
        "jobs/compat/adrf_view.py: a re-implementation of adrf's dispatch",
    ),
    (
        APIView.dispatch,
        "9c4624488df6fc08cbd300ad8a2726a376eb032bb62716d065a8a27b76e4d241",
        "jobs/compat/adrf_view.py: OnLoopAPIView.dispatch asks view_is_async once per class",
    ),
    (
        APIView.initial,
        "49a4a966fb04ec8a617151a306a0e96f05c13991745058126fe78b13385a4df5",
        "jobs/compat/adrf_view.py and FaceView.ainitial: DRF's initial, awaited",
    ),
    (
        Request._authenticate,
        "b3df4cb506df3cf159666d7433d79def6f59bed35d4e70ffe175319f8dca9b64",
        "jobs/compat/adrf_view.py: aauthenticate sets _authenticator as this does",
    ),
    (
        aioredis.Connection.pack_command,
        "9b7c89df5a6d11102eb12ae9e0d9ec1691b298d8710d98e315603447bd7ba66a",
        "jobs/compat/redis.py: HiredisPackingConnection replaces it",
    ),
    (
        RedisCluster.pipeline,
        "bf4680213d892a769cdda5930f9fcd54c74085d58fe131371e146a9ad6015836",
        "jobs/compat/redis.py: recast_pipeline swaps the class of what this builds",
    ),
    (
        ClusterPipeline.__init__,
        "b09c5da2be7047ed30e68888018684ba3913c702914aa74763dec54ffef5ecf1",
        "jobs/compat/redis.py: recast_pipeline keeps this construction",
    ),
    (
        AsyncRedisCluster.initialize,
        "70ef2af2a210b2867e801901d1983a0c7625ab2306e7e0aa2eafe525d413a98b",
        "jobs/redis_clients.py: _WaitingCluster reads and waits on its _initialize flag",
    ),
    (
        httpx.HTTPTransport.__init__,
        "c5fe8f1eadf4fb491a7b7cb18ca729b208952caa5ed47ad062a558d0f5d880ae",
        "jobs/compat/httpx_transport.py: replaces the _pool this builds",
    ),
    (
        httpx.HTTPTransport.handle_request,
        "9edcd0cdfa4b6872e902526042f467c9571c7f222fb2986e63375c9eddb062be",
        "jobs/compat/httpx_transport.py: every request goes through _pool",
    ),
    (
        aiohttp.BaseConnector._close,
        "4429f928165692bec854548af59ce7daeec9335d0639cd6b75370d18d789ae0d",
        "engine/compat.py: mark_connector_closed calls it",
    ),
]


@pytest.mark.parametrize(
    ("code", "digest", "patch"), GUARDED, ids=[code.__qualname__ for code, _, _ in GUARDED]
)
def test_the_patched_library_code_is_what_the_patch_was_written_against(code, digest, patch):
    found = hashlib.sha256(inspect.getsource(code).encode()).hexdigest()
    assert found == digest, f"{code.__module__}.{code.__qualname__} changed: review {patch}, then the digest"


def test_a_cluster_client_flags_its_slot_map_as_missing_until_discovered():
    client = AsyncRedisCluster(host="127.0.0.1", port=6379)  # no connection is made here
    assert client._initialize is True


def test_a_connector_whose_loop_has_ended_is_marked_closed():
    loop = asyncio.new_event_loop()

    async def make() -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector()

    connector = loop.run_until_complete(make())
    loop.close()
    mark_connector_closed(connector)
    assert connector.closed
