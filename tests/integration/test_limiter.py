"""The global rate limiter against the suite's real Redis: paced slots, shared by all."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from clonequeue.store.keys import Keys
from clonequeue.workers.limiter import PACING_MARGIN, ApiRateLimiter

pytestmark = pytest.mark.timing  # waits measured to tens of ms


def test_slots_are_paced_not_bursted(redis_client: redis.Redis) -> None:
    """At 20/s twenty threads asking at once get slots ~50 ms apart, not all at once."""
    limiter = ApiRateLimiter(redis_client, Keys("t"), "20/second")
    taken: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        assert limiter.acquire(5.0) == 0.0
        with lock:
            taken.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken.sort()
    assert taken[-1] - taken[0] >= 19 * 0.05 * 0.9
    # Ideally 5 in any 250 ms; a moving window would let all 20 go at once. The slack
    # is for threads that wake late on a busy host.
    busiest = max(sum(t <= start + 0.25 for t in taken[i:]) for i, start in enumerate(taken))
    assert busiest <= 8


def test_limiters_share_one_timeline(redis_client: redis.Redis) -> None:
    """Two limiters (two worker processes) on one namespace split one rate between them."""
    first = ApiRateLimiter(redis_client, Keys("t"), "10/second")
    second = ApiRateLimiter(redis_client, Keys("t"), "10/second")
    other_namespace = ApiRateLimiter(redis_client, Keys("u"), "10/second")
    assert first.acquire(0) == 0.0
    wait = second.acquire(0)
    assert 0.05 < wait <= 0.1 / PACING_MARGIN  # 10/s, paced 2 % under
    assert other_namespace.acquire(0) == 0.0


def test_a_slot_too_far_off_is_not_reserved(redis_client: redis.Redis) -> None:
    """Refusing returns the wait and leaves the timeline alone, so the queue does not grow."""
    limiter = ApiRateLimiter(redis_client, Keys("t"), "1/second")
    assert limiter.acquire(0) == 0.0
    waits = [limiter.acquire(0.1) for _ in range(5)]
    assert all(0.8 < wait <= 1.0 / PACING_MARGIN for wait in waits)
    assert waits == sorted(waits, reverse=True)  # the same slot, seen later and later
    started = time.monotonic()
    assert limiter.acquire(1.5) == 0.0  # sleeps until that slot, then takes it
    assert 0.6 < time.monotonic() - started <= 1.2


def test_cooldown_after_a_429_holds_every_limiter(redis_client: redis.Redis) -> None:
    first = ApiRateLimiter(redis_client, Keys("t"), "100/second")
    second = ApiRateLimiter(redis_client, Keys("t"), "100/second")
    first.cool_down(3.0)
    wait = second.acquire(1.0)
    assert 2.0 < wait <= 3.0
    started = time.monotonic()
    assert second.acquire(0.0) > 0  # the cached cooldown, no sleep
    assert time.monotonic() - started < 0.1


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def take_concurrently(limiter: ApiRateLimiter, count: int, threads: int = 10) -> list[float]:
    taken: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(count // threads):
            assert limiter.acquire(5.0) == 0.0
            with lock:
                taken.append(time.monotonic())

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(taken)


def test_a_busy_process_leases_slots_in_few_round_trips_and_keeps_the_pace(
    redis_client: redis.Redis,
) -> None:
    limiter = ApiRateLimiter(redis_client, Keys("t"), "1000/second")
    before = evalsha_calls(redis_client)
    taken = take_concurrently(limiter, 400)
    assert len(taken) == 400
    assert taken[-1] - taken[0] >= 399 * 0.001 * 0.9  # still one slot per ms
    assert evalsha_calls(redis_client) - before <= 150  # one round trip per call before


def test_leased_slots_left_unused_are_dropped_not_spent_in_a_burst(
    redis_client: redis.Redis,
) -> None:
    limiter = ApiRateLimiter(redis_client, Keys("t"), "200/second")
    take_concurrently(limiter, 100)  # busy: leases several slots at a time
    calls = evalsha_calls(redis_client)
    while evalsha_calls(redis_client) == calls:  # until a fresh lease: it leaves slots over
        limiter.acquire(5.0)
    time.sleep(0.3)  # idle: the slots still leased are now in the past
    taken = take_concurrently(limiter, 10)
    assert taken[-1] - taken[0] >= 9 * 0.005 * 0.8  # paced at 5 ms, not all at once


def test_calls_count_as_scarce_only_while_slots_are_far_off(redis_client: redis.Redis) -> None:
    """The scheduler polls at the cadence's slow end only when demand exceeds the rate."""
    keys = Keys("scarce")
    limiter = ApiRateLimiter(redis_client, keys, "100/second")
    for _ in range(5):  # 5 calls at 100/s: each slot is near
        assert limiter.acquire(1.0) == 0.0
    assert not limiter.scarce()
    busy = ApiRateLimiter(redis_client, Keys("scarce-busy"), "2/second")
    waits = [busy.acquire(0.1) for _ in range(3)]  # after the 1st, the next slot is 0.5 s off
    assert any(w > 0 for w in waits)
    assert busy.scarce()


def test_a_cooldown_makes_calls_scarce(redis_client: redis.Redis) -> None:
    limiter = ApiRateLimiter(redis_client, Keys("scarce-429"), "100/second")
    limiter.cool_down(0.05)
    assert limiter.acquire(1.0) == 0.0
    assert limiter.scarce()


def test_each_429_episode_slows_the_pace_once(redis_client: redis.Redis) -> None:
    """429s answered while a cooldown runs are one episode: one 5 % step, not one each."""
    keys = Keys("slowdown")
    limiter = ApiRateLimiter(redis_client, keys, "100/second")
    assert limiter.cool_down(0.2) == pytest.approx(1.05)
    assert limiter.cool_down(0.2) == pytest.approx(1.05)  # same episode
    time.sleep(0.25)
    assert limiter.cool_down(0.05) == pytest.approx(1.05**2)
    assert 55 <= int(redis_client.ttl(keys.rate_slowdown)) <= 60  # type: ignore[arg-type]


def test_a_slowdown_stretches_the_pace(redis_client: redis.Redis) -> None:
    """At 100/s slowed down 4x, six calls in a row take >= 5 x 40 ms, not 5 x 10 ms."""
    keys = Keys("slowdown-pace")
    redis_client.set(keys.rate_slowdown, "4")
    limiter = ApiRateLimiter(redis_client, keys, "100/second")
    started = time.monotonic()
    for _ in range(6):
        assert limiter.acquire(1.0) == 0.0
    assert time.monotonic() - started >= 5 * 0.04 * 0.9


def test_the_slowdown_never_passes_its_cap(redis_client: redis.Redis) -> None:
    keys = Keys("slowdown-cap")
    redis_client.set(keys.rate_slowdown, "3.9")
    limiter = ApiRateLimiter(redis_client, keys, "100/second")
    assert limiter.cool_down(0.01) == pytest.approx(4.0)
