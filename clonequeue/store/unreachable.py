"""One short line for a Redis that cannot be reached, and what to do about it.

redis-py's ``MasterNotFoundError`` carries a whole client ``repr`` per sentinel (a
kilobyte each); what a user needs is which sentinels failed and how, or that they
answered and know no master of that name that is up.
"""

from __future__ import annotations

import re

from redis.sentinel import MasterNotFoundError

from clonequeue.redis_refusals import error_line

_MASTER = re.compile(r"No master found for '([^']*)'")
_ENTRY_START = re.compile(r", (?=<redis\.)")
_WHERE = re.compile(r"host=([^,]+),port=(\d+)")
_ERROR = re.compile(r"> - (?:\w+:)?\w+: (.*)$", re.DOTALL)
_REFUSED = re.compile(r"connecting to \S+?\.\s+(.*?)\.?$")


def unreachable_reason(exc: BaseException) -> str:
    """Why Redis could not be reached, in one line."""
    if not isinstance(exc, MasterNotFoundError):
        return error_line(exc)
    text = str(exc).strip()
    found = _MASTER.search(text)
    master = found.group(1) if found else "?"
    if " : " not in text:  # every sentinel answered
        return f"the sentinels know no master named {master!r} that is up"
    failures = [_sentinel_failure(entry) for entry in _ENTRY_START.split(text.split(" : ", 1)[1])]
    return f"no sentinel answered with a master named {master!r} ({'; '.join(failures)})"


def _sentinel_failure(entry: str) -> str:
    """``host:port: what went wrong`` from one sentinel's part of the error."""
    where = _WHERE.search(entry)
    error = _ERROR.search(entry)
    why = error.group(1).strip() if error else "no answer"
    refused = _REFUSED.search(why)
    if refused:
        why = refused.group(1).lower()
    return f"{where.group(1)}:{where.group(2)}: {why[:200]}" if where else why[:200]


def unreachable_hint(exc: BaseException, *, sentinel: bool = False) -> str:
    """What to do next: start Redis, or for Sentinel check the sentinels and the name
    (``sentinel``: the URL is a ``sentinel://`` one, whose master may be failing over)."""
    if isinstance(exc, MasterNotFoundError):
        return (
            "check that the sentinels run and that they watch a master of that name "
            "(CLONEQUEUE_SENTINEL_MASTER) which is up"
        )
    text = str(exc).lower()
    # It answered: running and reachable, but the URL's login or database is refused
    # (each was told to check that Redis runs, and to try `clonequeue redis`; QA pass).
    if any(w in text for w in ("username-password", "wrongpass", "noauth", "authenticat")):
        return (
            "Redis answers but refuses the login: check the password (and user) in "
            "CLONEQUEUE_REDIS_URL, `redis://:PASSWORD@HOST:6379/0` (or "
            "`redis://USER:PASSWORD@…` with ACLs)"
        )
    if "db index" in text or "invalid db" in text:
        return (
            "Redis answers but has no such database: check the number at the end of "
            "CLONEQUEUE_REDIS_URL (`…:6379/0`; a Redis has `databases` of them, 16 by default)"
        )
    if sentinel:  # the sentinels named a master that did not answer (QA pass)
        return (
            "the master the sentinels named does not answer: a failover may be under way "
            "(down-after-milliseconds, then a few seconds): try again shortly, and if it "
            "lasts, check the master and `SENTINEL get-master-addr-by-name` on a sentinel"
        )
    # (not "start it with `clonequeue redis`" alone: that runs an empty Redis on 6390 for
    # trying things, whatever URL failed; operator QA pass)
    return (
        "check that the Redis CLONEQUEUE_REDIS_URL names is running and reachable from here, "
        "or set CLONEQUEUE_REDIS_URL (to try things: `clonequeue redis` runs one on 6390)"
    )
