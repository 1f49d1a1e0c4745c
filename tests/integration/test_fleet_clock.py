"""The fleet's clock is Redis's: a host whose own clock is off still stamps Redis's time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import Celery
from kombu import Message

from clonequeue.local.ports import free_port
from clonequeue.store.clock import FleetClock
from clonequeue.workers.fleet_time import FleetTimeRequest, use_fleet_clock

AHEAD_S = 120.0


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_a_host_two_minutes_ahead_reads_redis_time(redis_client: redis.Redis) -> None:
    clock = FleetClock(redis_client, local=lambda: time.time() + AHEAD_S)
    assert abs(clock() - redis_now(redis_client)) < 0.5
    assert abs(clock.offset() + AHEAD_S) < 0.5


def test_the_offset_is_measured_again_after_refresh_s(redis_client: redis.Redis) -> None:
    skew = {"s": 0.0}
    ticks = {"t": 0.0}
    clock = FleetClock(
        redis_client,
        refresh_s=10.0,
        local=lambda: time.time() + skew["s"],
        monotonic=lambda: ticks["t"],
    )
    assert abs(clock.offset()) < 0.5
    skew["s"] = 60.0  # the host's clock jumped (NTP step, VM resumed)
    ticks["t"] = 5.0
    assert abs(clock.offset()) < 0.5, "measured again before refresh_s"
    ticks["t"] = 10.0
    assert abs(clock.offset() + 60.0) < 0.5


def test_a_redis_that_does_not_answer_keeps_the_last_offset(redis_client: redis.Redis) -> None:
    working = FleetClock(redis_client, local=lambda: time.time() - AHEAD_S)
    assert abs(working.offset() - AHEAD_S) < 0.5
    working._client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    working._next_at = float("-inf")
    assert abs(working.offset() - AHEAD_S) < 0.5  # no exception, the last offset stands
    never = FleetClock(redis.Redis(port=free_port(), socket_connect_timeout=0.2))
    assert never.offset() == 0.0


def _noop() -> None:
    """The task the request is for."""


def _request(app: Celery, eta: datetime, expires: datetime) -> Any:
    body: tuple[Any, ...] = ((), {}, {"callbacks": None, "errbacks": None, "chain": None})
    headers = {
        "lang": "py", "task": "t", "id": "1", "eta": eta.isoformat(),
        "expires": expires.isoformat(), "retries": 0, "root_id": "1", "parent_id": None,
        "argsrepr": "()", "kwargsrepr": "{}", "origin": "x", "ignore_result": True,
    }  # fmt: skip
    message = Message(body=body, headers=headers, content_type="application/json")
    return FleetTimeRequest(message, app=app, decoded=True, body=body, headers=headers)


def test_a_worker_ahead_of_redis_waits_for_an_eta_by_its_own_clock(
    redis_client: redis.Redis,
) -> None:
    """A message due in 10 s of fleet time is due in 10 s of this host's time too."""
    app = Celery(set_as_current=False)
    app.task(name="t")(_noop)
    use_fleet_clock(app, FleetClock(redis_client, local=lambda: time.time() + AHEAD_S))
    app.now()  # the offset is measured once, here
    # Bracketed, not compared with a later reading: a loaded CI host can pause this
    # process between two readings for longer than the tolerance (seen: 1 of ~900).
    before = redis_now(redis_client)
    local_now = datetime.fromtimestamp(time.time() + AHEAD_S, UTC)
    fleet_now = app.now()
    after = redis_now(redis_client)
    assert before - 0.5 < fleet_now.timestamp() < after + 0.5
    request = _request(app, fleet_now + timedelta(seconds=10), fleet_now + timedelta(seconds=60))
    # This host's "local" clock is AHEAD_S ahead: the ETA moves AHEAD_S later with it.
    assert abs((request.eta - local_now).total_seconds() - 10) < 0.5
    assert abs((request.expires - local_now).total_seconds() - 60) < 0.5


def test_a_time_read_that_waited_out_an_outage_measures_nothing(redis_client: redis.Redis) -> None:
    """The read rode out a restart for 17 s: its midpoint put this host 8.3 s behind
    Redis's clock on one host (operator QA pass), and the fleet's clock with it."""

    class SlowAfterRestart:
        def __init__(self) -> None:
            self.calls = 0

        def time(self) -> Any:
            self.calls += 1
            if self.calls == 2:  # the second measurement waits out an outage
                shift["s"] += 17.0
            return redis_client.time()

    shift = {"s": 0.0}
    ticks = {"t": 0.0}
    client = SlowAfterRestart()
    clock = FleetClock(
        client, refresh_s=10.0, local=lambda: time.time() + shift["s"], monotonic=lambda: ticks["t"]
    )
    assert abs(clock.offset()) < 0.5
    ticks["t"] = 11.0
    shift["s"] = 0.0  # (the host's clock itself is right: only the read was slow)
    clock()
    assert client.calls == 2
    assert abs(clock.offset()) < 0.5  # not 8.5 s off
