"""Outbound URLs we are told to call (webhooks): never a way into our own network.

Only http(s); the host name is resolved once here and the connection goes to that
checked address (a DNS answer that changes between check and connect cannot steer
it inside). Private, loopback, link-local, multicast and reserved addresses are
refused unless ``CLONEQUEUE_WEBHOOK_ALLOW_PRIVATE=true``. No redirects are followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeTargetError(ValueError):
    """A URL we refuse to call; the message says why (never retried)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # the name in the URL (Host header, TLS SNI and certificate check)
    address: str  # the checked IP the connection goes to
    port: int
    path: str  # path and query


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _blocked(ip.ipv4_mapped)
    for test, what in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_private, "private"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved or ip.is_unspecified, "reserved"),
    ):
        if test:
            return what
    return None


def check_url(url: str) -> None:
    """The static part: an http(s) URL with a host. Raises :class:`UnsafeTargetError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTargetError(f"webhook URL must be http(s) with a host, not {url!r}")
    if parts.username or parts.password:
        raise UnsafeTargetError("webhook URL must not carry a user or password")


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check ``url`` and the address its host resolves to; the connection must use it."""
    check_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:  # every answer must be allowed: the client might pick any
        reason = _blocked(ipaddress.ip_address(address.split("%")[0]))
        if reason and not allow_private:
            raise UnsafeTargetError(
                f"webhook host {host} resolves to a {reason} address ({address}); refused "
                "(set CLONEQUEUE_WEBHOOK_ALLOW_PRIVATE=true for a receiver on your own network)"
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, addresses[0], port, path)
