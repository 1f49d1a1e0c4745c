"""Redis URLs, plain or kombu's Sentinel form, parsed once for the store and the broker.

kombu's form lists every sentinel, separated by ``;``:
``sentinel://:PASSWORD@h1:26379/0;sentinel://h2:26379;sentinel://h3:26379``. The
password (and user, and db) of the first URL that has one is the *master's*, as
in kombu; sentinels that require a password of their own get
``CLONEQUEUE_SENTINEL_PASSWORD``. The master's name is ``CLONEQUEUE_SENTINEL_MASTER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

SENTINEL_SCHEME = "sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """The sentinels to ask, and how to log in to the master they name."""

    sentinels: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    db: int


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Every ``sentinel://host:port`` of ``url``; ValueError naming the part that is wrong."""
    sentinels: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for part in (p.strip() for p in url.split(";")):
        if not part:
            continue
        try:
            parts = urlsplit(part)
            hostname = parts.hostname
        except ValueError:  # its text quotes the part: a password, perhaps
            raise ValueError(f"{mask_url(part)!r} cannot be parsed as a URL") from None
        if parts.scheme != SENTINEL_SCHEME or not hostname:
            raise ValueError(
                "each part of a Sentinel URL must read sentinel://host:port "
                f"(got {mask_url(part)!r})"
            )
        try:
            port = parts.port or SENTINEL_PORT
        except ValueError:
            raise ValueError(f"bad port in {mask_url(part)!r}") from None
        sentinels.append((hostname, port))
        if password is None and parts.password is not None:
            username = unquote(parts.username) if parts.username else None
            password = unquote(parts.password)
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"the db in {mask_url(part)!r} must be a number")
            db = int(path)
    if not sentinels:
        raise ValueError("a Sentinel URL names at least one sentinel://host:port")
    return SentinelUrl(tuple(sentinels), username, password, db)


def mask_url(url: str) -> str:
    """``url`` with its userinfo masked, each ``;``-separated part: a password becomes
    ``***`` (the user name beside it is kept), and a lone userinfo with no password
    (``http://TOKEN@host``, ``redis://PASSWORD@host``, ``TOKEN:@host``) is ``***`` whole:
    it is often the secret itself."""
    return ";".join(_mask_one(part) for part in url.split(";"))


def shown_url(url: str) -> str:
    """``url`` as it may be printed: its userinfo (:func:`mask_url`) and its query values
    and fragment (:func:`mask_query`) masked."""
    return mask_query(mask_url(url))


def mask_query(url: str) -> str:
    """``url`` with each query value replaced by ``***``, the names kept (a parameter
    with no ``=`` is ``***`` whole), and its fragment ``***``: a webhook or pre-signed
    URL carries its token there (``?token=…``, ``X-Amz-Signature=…``, ``#access_token=…``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if not parts.query and not parts.fragment:
        return url
    pairs = (pair.partition("=") for pair in parts.query.split("&")) if parts.query else ()
    query = "&".join(f"{name}=***" if sep else "***" for name, sep, _ in pairs)
    fragment = "***" if parts.fragment else ""
    return urlunsplit(parts._replace(query=query, fragment=fragment))


def _mask_one(url: str) -> str:
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return "***"  # unparseable: show nothing that could be a secret
    _, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    # A user beside a password is no secret; alone (no password, or an empty one) it
    # may well be one: a token given as the user, or a Redis password without its ':'.
    shown = f"{username or ''}:***" if password else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))
