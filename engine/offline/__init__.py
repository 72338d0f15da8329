"""The built-in offline engine: a real but small word trigram model that needs no network."""

from __future__ import annotations

from engine.offline.engine import OfflineEngine

__all__ = ["OfflineEngine"]
