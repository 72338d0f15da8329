"""redis-py, patched where its public API does not serve (guarded by tests/test_compat.py)."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
from redis.cluster import ClusterPipeline as SyncClusterPipeline
from redis.connection import HiredisRespSerializer


class HiredisPackingConnection(aioredis.Connection):
    """Packs commands in C with hiredis, as redis-py's sync client does; its asyncio client packs
    them in Python, which was 6% of a busy worker's samples (one EVALSHA per job per batch)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD": two words on the wire
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a memoryview or bytearray: redis-py's own serializer converts them
            return HiredisRespSerializer().pack(*args)


P = TypeVar("P", bound=SyncClusterPipeline)


def recast_pipeline(pipe: SyncClusterPipeline, subclass: type[P]) -> P:
    """The pipeline redis-py built, as an instance of a subclass that overrides only methods.
    RedisCluster.pipeline builds its ClusterPipeline from a dozen of the client's private
    attributes; swapping the class keeps that construction redis-py's own instead of a copy."""
    pipe.__class__ = subclass
    return cast(P, pipe)
