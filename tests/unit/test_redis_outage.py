"""What an outage says at its end counts the time the failing read spent retrying."""

from __future__ import annotations

import time

import pytest
import redis

from clonequeue.store.outage import RedisOutage


def test_the_outage_said_at_its_end_counts_the_first_reads_retries() -> None:
    """Each read rides a restart out for ~30 s before it fails: counted from that
    failure, a 40 s outage was logged as "unreachable for 12 s" (QA pass)."""
    said: list[float] = []
    outage = RedisOutage(60.0, started=lambda _: None, ended=said.append)
    down = redis.exceptions.ConnectionError("refused")
    assert outage.next_wait(down, read_began=time.monotonic() - 30.0) == 0.5
    outage.end()
    (seconds,) = said
    assert 30.0 <= seconds < 31.0


def test_the_bound_still_counts_from_the_first_failure() -> None:
    outage = RedisOutage(0.2, started=lambda _: None, ended=lambda _: None)
    down = redis.exceptions.ConnectionError("refused")
    assert outage.next_wait(down, read_began=time.monotonic() - 30.0) == pytest.approx(0.2, 0.1)
    time.sleep(0.25)
    with pytest.raises(redis.exceptions.ConnectionError):
        outage.next_wait(down)
