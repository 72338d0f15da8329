"""aiohttp, patched where its public API does not serve (guarded by tests/test_compat.py). The
engine layer knows no Django, so its one patch lives here rather than in jobs/compat/."""

from __future__ import annotations

import aiohttp


def mark_connector_closed(connector: aiohttp.BaseConnector) -> None:
    """Marks a connector whose event loop has ended closed, so that it does not log "Unclosed
    connector" when collected. The public close() is a coroutine, and with its loop gone there
    is nothing to run it on: BaseConnector._close() is its synchronous part."""
    connector._close()
