"""A Redis that answered but refuses writes for now, told from one it cannot reach.

Out of memory under ``noeviction`` (OOM) or unable to write its AOF or snapshot
(MISCONF: often a full disk), Redis is up and reads work; what it needs is memory or
disk, and every write refused then is safe to try again. A base module: the store,
the workers, the CLI and the exporter all tell it apart the same way.
"""

from __future__ import annotations

import redis


def refuses_writes(exc: BaseException) -> bool:
    """Redis out of reach, or up but refusing writes for now (OOM, MISCONF): both pass
    when an operator frees memory or disk; nothing about the write itself is wrong."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.OutOfMemoryError):
        return True
    return write_refusal(exc) is not None


def write_refusal(exc: BaseException) -> str | None:
    """What a Redis that answered but refused is short of, and what to do; else None."""
    if not isinstance(exc, redis.exceptions.ResponseError):
        return None
    text = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM " in text:
        return (
            "Redis is full and refuses writes (used memory > maxmemory, policy noeviction): "
            "raise maxmemory or free memory; nothing is lost, producers and workers retry"
        )
    if text.startswith("MISCONF") or "-MISCONF" in text:
        return (
            "Redis cannot write its AOF or snapshot (MISCONF: often a full disk) and refuses "
            "writes: free disk space where it writes; nothing is lost, producers and workers "
            "retry, and Redis goes on by itself once it can write"
        )
    return None
