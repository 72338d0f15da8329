"""The guard against server-side request forgery: a webhook URL may only lead to a public
address, unless its network is in SPOOL_WEBHOOK_ALLOWED_NETWORKS.

Checked when an endpoint is registered (so its owner hears at once), and again by every
connection an attempt opens: the webhook client resolves the name once, checks every address and
connects to one of those (jobs/webhooks/transport.py), so a name that resolves to a public
address at the check cannot lead to a private one at the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; raises RefusedAddress when it does not resolve.
Resolver = Callable[[str, int], list[IPAddress]]


class RefusedAddress(ValueError):
    """The URL leads somewhere Spool does not send webhooks; the message says why."""


def _allowed(address: IPAddress) -> bool:
    return any(
        address in ipaddress.ip_network(net, strict=False) for net in settings.SPOOL.webhooks.allowed_networks
    )


def _forbidden(address: IPAddress) -> str | None:
    """What kind of address it is, when it is one Spool must not call."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden(address.ipv4_mapped)
    # The narrower kinds first: Python counts 0.0.0.0, 127/8 and 169.254/16 as private too.
    for kind, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flagged:
            return kind
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedAddress(f"The host {host!r} cannot be resolved ({exc}).") from None
    # An inet sockaddr starts with its address as a string (typeshed also allows the (int, bytes)
    # of a Python built without IPv6 support, which getaddrinfo does not return here).
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]


def checked_addresses(host: str, port: int, *, resolver: Resolver = resolve) -> list[IPAddress]:
    """Every address host resolves to, once each is known to be public or allowed; raises
    RefusedAddress otherwise (one forbidden address is enough: a resolver may hand out any)."""
    found = resolver(host, port)
    for address in found:
        kind = _forbidden(address)
        if kind is not None and not _allowed(address):
            raise RefusedAddress(
                f"The URL's host {host!r} resolves to {address}, a {kind} address; webhooks "
                "are only sent to public addresses."
            )
    return found


def check_url(url: str, *, resolver: Resolver = resolve) -> None:
    """Raises RefusedAddress unless url is http(s) and every address its host resolves to is
    public or allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress("The URL must be an http or https URL with a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedAddress("The URL's port is not a valid port number.") from None
    checked_addresses(parts.hostname, port, resolver=resolver)
