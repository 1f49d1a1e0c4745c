"""Words for counts, shared by every message that shows one: "1 job", "2 jobs".

It imports nothing of clonequeue, so any layer may use it.
"""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` and ``noun``, the noun plural unless the count is 1 (``1,200 rows``).

    ``plural_noun`` is for nouns that do not just take an ``s`` (delivery, deliveries).
    """
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count:,} {word}"
