"""Builds an engine from its kind and config dict, and caches built engines per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine.types import Engine


def _offline(config: dict[str, Any]) -> Engine:
    from engine.offline import OfflineEngine

    return OfflineEngine(config)


def _openai(config: dict[str, Any]) -> Engine:
    from engine.upstream import UpstreamEngine

    return UpstreamEngine(config)


KINDS: dict[str, Callable[[dict[str, Any]], Engine]] = {
    "offline": _offline,
    "openai": _openai,
}

_cache: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()


class UnknownEngineKind(ValueError):
    pass


def build_engine(kind: str, config: dict[str, Any]) -> Engine:
    try:
        factory = KINDS[kind]
    except KeyError:
        raise UnknownEngineKind(f"Unknown engine kind {kind!r}; known: {sorted(KINDS)}") from None
    return factory(config)


def cached_engine(cache_key: str, kind: str, config: dict[str, Any]) -> Engine:
    """One engine object per (key, config) per process: the offline model is costly to build."""
    key = (cache_key, repr(sorted(config.items())) + kind)
    with _lock:
        engine = _cache.get(key)
        if engine is None:
            engine = _cache[key] = build_engine(kind, config)
        return engine
