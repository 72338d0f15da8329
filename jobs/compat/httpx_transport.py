"""httpx's transport with a network backend of the caller's (guarded by tests/test_compat.py).

HTTPTransport takes no network backend, and sends every request through the httpcore pool it
keeps in `self._pool`; the pool is replaced by the same pool with the backend given."""

from __future__ import annotations

import ssl

import httpcore
import httpx

# HTTPTransport's own defaults.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


def transport_with_backend(backend: httpcore.SyncBackend, ssl_context: ssl.SSLContext) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False, limits=LIMITS)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=LIMITS.max_connections,
        max_keepalive_connections=LIMITS.max_keepalive_connections,
        keepalive_expiry=LIMITS.keepalive_expiry,
        network_backend=backend,
    )
    return transport
