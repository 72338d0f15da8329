"""The webhook client's connections go to the address that was checked.

The check and the connection are one step: when httpcore opens a connection to a URL's host, the
network backend below resolves the name once, checks every address it got
(jobs.webhooks.addresses) and connects to one of those, never asking the resolver again. Only
the TCP connection is made to the address: the origin stays the host name, so the Host header,
TLS's SNI and the certificate's host name check are all the host's, and the pool keeps a
connection for that host alone.

Why not connect to the address in the URL instead (`https://<ip>/...` with the `sni_hostname`
extension and a Host header), which httpx supports as it is: its pool keys connections by the
URL's host, so two endpoints on one shared address (a CDN, a load balancer) would share a TLS
connection made and verified for the other's name; every error would name the address, not the
host; and the check would still be a look-up of its own before the request. The cost of this
way: httpx takes no network backend, so the pool HTTPTransport keeps is rebuilt with one
(jobs/compat/httpx_transport.py, guarded by tests/test_compat.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from jobs.compat.httpx_transport import transport_with_backend
from jobs.webhooks import addresses


class CheckedBackend(httpcore.SyncBackend):
    """Connects to a checked address of the host, trying each in turn (as a plain connect
    would); raises RefusedAddress when the host resolves to one that may not be called."""

    def __init__(self, resolver: addresses.Resolver = addresses.resolve) -> None:
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in addresses.checked_addresses(host, port, resolver=self.resolver):
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolved to no address")


def checked_client(
    *,
    timeout: httpx.Timeout,
    resolver: addresses.Resolver = addresses.resolve,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """A client whose every connection goes to a checked address. Never follows a redirect (a
    receiver could otherwise send Spool's signed request anywhere) and takes no proxy from the
    environment (the check must see the real host)."""
    return httpx.Client(
        transport=transport_with_backend(
            CheckedBackend(resolver), ssl_context or httpx.create_ssl_context(trust_env=False)
        ),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
