"""A webhook URL's static rules, which start-up (``CLONEQUEUE_WEBHOOK_URL``) and
``submit --webhook`` share: http(s) with a host, no user or password, a port from 1
to 65535, one urllib3 parses. Where it resolves to is checked when it is called
(clonequeue/outputs/targets.py). Messages never show a query value or userinfo.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from clonequeue.config.redis_urls import mask_query


class UnsafeTargetError(ValueError):
    """A URL we refuse to call; the message says why (never retried)."""


def shown_url(url: str) -> str:
    """``url`` as it may be printed: no user or password, each query value ``***``."""
    try:
        parts = urlsplit(url)
        return mask_query(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl())
    except ValueError:
        return "(a URL that cannot be parsed)"


def check_url(url: str) -> None:
    """The static part: an http(s) URL with a host, no user or password, a port from 1 to
    65535, that urllib3 parses (what it cannot would fail every attempt, for ever).
    Raises :class:`UnsafeTargetError`, whose message never shows a query value."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeTargetError(f"webhook URL {shown!r} cannot be parsed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTargetError(f"webhook URL must be http(s) with a host, not {shown!r}")
    if parts.username or parts.password:
        raise UnsafeTargetError("webhook URL must not carry a user or password")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise UnsafeTargetError(f"webhook URL {shown!r}: the port must be a number from 1 to 65535")
    try:
        parse_url(url)
    except LocationParseError:
        raise UnsafeTargetError(f"webhook URL {shown!r} cannot be parsed") from None
