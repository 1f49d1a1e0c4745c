"""Outbound URLs we are told to call (webhooks): never a way into our own network.

The URL's static rules are clonequeue/config/webhook_url.py's (start-up checks
CLONEQUEUE_WEBHOOK_URL with them, so they live below this layer); the host name is
resolved once here, within the attempt's time, and the connection goes to that
checked address (a DNS answer that changes between check and connect cannot steer
it inside). Private, loopback, link-local, multicast and reserved addresses are
refused unless ``CLONEQUEUE_WEBHOOK_ALLOW_PRIVATE=true``. No redirects are followed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clonequeue.config.webhook_url import UnsafeTargetError, check_url


class ResolveTimeoutError(OSError):
    """The host name was not resolved in the time the attempt had left (retried)."""


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


def endpoint_host(url: str) -> str:
    """``host[:port]`` of ``url`` for a log line (never its user, password or query)."""
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or "?"
    except ValueError:
        return "?"


def resolve(url: str, *, allow_private: bool, timeout_s: float | None = None) -> Target:
    """Check ``url`` and the address its host resolves to; the connection must use it.
    A name not resolved within ``timeout_s`` raises :class:`ResolveTimeoutError`."""
    check_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = _lookup(host, port, timeout_s)
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


def _lookup(host: str, port: int, timeout_s: float | None) -> list[Any]:
    """``getaddrinfo``, waited for at most ``timeout_s``. It has no timeout of its own: a
    host whose name servers never answer holds it for the resolver's (5 s a try, 2 tries,
    per name server). It runs in a daemon thread that is left to finish on its own if the
    attempt's time runs out; an address (no lookup) is answered at once, in this thread."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
        literal = True
    except ValueError:
        literal = False
    if literal or timeout_s is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    answer: list[Any] = []

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)

    thread = threading.Thread(target=look_up, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(max(timeout_s, 0.0))
    if not answer:
        raise ResolveTimeoutError(f"cannot resolve {host} within {round(timeout_s, 1):g} s")
    if isinstance(answer[0], OSError):
        raise answer[0]
    return list(answer[0])
