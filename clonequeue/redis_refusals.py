"""A Redis that answered but refuses writes for now, told from one it cannot reach.

Out of memory under ``noeviction`` (OOM) or unable to write its AOF or snapshot
(MISCONF: often a full disk), Redis is up and reads work; what it needs is memory or
disk, and every write refused then is safe to try again. A base module: the store,
the workers, the CLI and the exporter all tell it apart the same way, and say a Redis
error in one line the same way (:func:`error_line`).
"""

from __future__ import annotations

import re

import redis

# Where Redis's own words start in a refusal: at the start of the text, or after the
# last ``-`` of an error a script or a pipeline passed on ("Command # 1 (EVALSHA …) of
# pipeline caused error: Error running script …: -MISCONF Redis is …").
_REFUSAL_WORDS = re.compile(r"(?:.*-)?((?:MISCONF|OOM) .*)")
REDIS_WORDS_MAX = 120
"""Redis's own words in a refusal's line are cut to this many characters (its MISCONF
reply is 380: a paragraph)."""


def refuses_writes(exc: BaseException) -> bool:
    """Redis out of reach, or up but refusing writes for now (OOM, MISCONF): both pass
    when an operator frees memory or disk; nothing about the write itself is wrong."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.OutOfMemoryError):
        return True
    return write_refusal(exc) is not None


def write_refusal(exc: BaseException) -> str | None:
    """What a Redis that answered but refused is short of, and what to do; else None.

    :func:`refusal_line` adds Redis's own words, cut to a line."""
    if not isinstance(exc, redis.exceptions.ResponseError):
        return None
    text = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM " in text:
        return (
            "Redis is full (used memory at maxmemory, policy noeviction) and refuses writes "
            "until memory is freed: raise maxmemory or free memory; nothing is lost"
        )
    if text.startswith("MISCONF") or "-MISCONF" in text:
        return (
            "Redis cannot save to disk and refuses writes until it can: check the disk it "
            "saves to (`CONFIG GET dir` on the Redis server); nothing is lost"
        )
    return None


def refusal_line(exc: BaseException) -> str | None:
    """:func:`write_refusal` and Redis's own words, in one line; None if not a refusal."""
    refused = write_refusal(exc)
    if refused is None:
        return None
    line = error_line(exc)
    found = _REFUSAL_WORDS.match(line)
    return f"{refused} (Redis: {clip(found.group(1) if found else line, REDIS_WORDS_MAX)})"


def error_line(exc: BaseException) -> str:
    """``exc`` in one line: the first line of its text, else its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters; else cut at its last sentence end
    that keeps at least a third of it, or else at its last word boundary, with ``…``."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]  # a space right after the limit ends a word that fits
    sentence = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if sentence >= limit // 3:
        return head[: sentence + 1] + " …"
    space = head.rfind(" ")
    cut = head[:space] if space > 0 else text[: limit - 1]
    return cut.rstrip(" ,;:(-") + "…"
