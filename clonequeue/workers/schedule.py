"""When to poll and when to retry: the backoff math, in one small tested place."""

from __future__ import annotations

import random


def poll_delay(
    polls_done: int,
    *,
    min_s: float,
    max_s: float,
    factor: float,
    jitter: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next poll of a remote task that has been polled ``polls_done`` times.

    Starts at ``min_s`` and grows by ``factor`` per poll up to ``max_s`` (the provider
    advises 5–10 s). Only the first delay is jittered (upwards, at most to ``max_s``):
    that spreads tasks created together for good, while later intervals stay exact so
    long tasks are polled at ``max_s`` on average, not a little more often.
    """
    if polls_done == 0:
        return min(max_s, min_s * (1.0 + jitter * (rng or random).random()))
    return min(max_s, min_s * factor**polls_done)


def first_poll_delay(
    learned_s: float | None,
    *,
    min_s: float,
    max_s: float,
    jitter: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds from a create to its first poll.

    ``poll_delay(0)`` until the batch has learned when its remote tasks tend to be
    done (``learned_s``, see lua/prelude.lua: learn_first_poll); then that, jittered
    the same way, never below ``min_s`` nor above ``max_s``.
    """
    base = min_s if learned_s is None else min(max(learned_s, min_s), max_s)
    return min(max_s, base * (1.0 + jitter * (rng or random).random()))


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before a create that failed transiently is tried again.

    Exponential (``base_s`` doubling per attempt, up to ``max_s``) with jitter in
    [d/2, d]; a ``Retry-After`` from the API is honoured as the lower bound.
    """
    ceiling = min(max_s, base_s * 2.0 ** max(attempt - 1, 0))
    delay = ceiling * (0.5 + 0.5 * (rng or random).random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s * (1.0 + 0.2 * (rng or random).random()))
    return delay
