"""The global API rate limit, shared by every worker process through Redis.

Celery's own ``rate_limit`` is per worker; the provider counts all of our calls.
The limit is paced, not windowed: each call reserves the next free slot on one
timeline in Redis (GCRA, the generic cell rate algorithm), so "25/second" means a
call every 40 ms. A moving window lets a whole second's worth go at once; the
threads of a busy host then spread that burst out, it meets the next one at the
API, and a sliding-window provider answers 429 although we kept our limit (seen in
CI at 25/s against an API allowing 30/s). Slot times come from the Redis server's
clock, so hosts with skewed clocks share one timeline.

The pace is ``PACING_MARGIN`` (2 %) under the configured rate: a slot is taken
before its request travels, the provider counts arrivals, and the jitter between
put a 51st call into the API's second now and then when we paced at exactly 50/s
(one 429 per makespan run, each stopping the fleet for its ``Retry-After``; with
the margin none).

After a 429 a fleet-wide cooldown key holds every worker back for the
``Retry-After`` the API asked for, and the pace slows by ``SLOWDOWN_STEP`` (5 %) per
429 episode, down to a quarter, until a minute passes without one. The provider
does not publish its limits and counts by arrival, not by our slots: a limit set a
hair too high would otherwise stop the fleet for a ``Retry-After`` again and again.

``scarce()`` tells the scheduler when calls are the bottleneck (a slot was far off,
or a cooldown ran, in the last minute): then a poll that finds a task still
running costs a create or a poll that would have found a result, and polls move to
the slow end of the provider's cadence.

A busy process leases a few consecutive slots per round trip (as many as it uses in
``LEASE_S``, at most ``MAX_LEASE``) and hands them to its threads: at hundreds of
polls a second the reservation was ~5 % of a worker's CPU per poll. The slots are
still the fleet's one timeline. A leased slot may be spent a little late (its thread
was busy), but never more than ``LEASE_S`` late and never sooner than one interval
after the process's previous leased call, so leases never add up to a burst; one
left unused longer is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import cast

import redis
from limits import parse

from clonequeue.store.keys import Keys

COOLDOWN_CHECK_INTERVAL_S = 0.25
LEASE_S = 0.05  # lease what this process uses in this long...
MAX_LEASE = 10  # ...but never more slots than this at once
DEMAND_WINDOW_S = 1.0
PACING_MARGIN = 0.98  # pace at this share of the configured rate
SLOWDOWN_STEP = 1.05  # each 429 episode stretches the interval by this...
MAX_SLOWDOWN = 4.0  # ...up to this factor...
SLOWDOWN_HOLD_S = 60  # ...until this long passes without a 429
SCARCE_WAIT_S = 0.25  # a slot this far off means demand is above the rate...
# ...and calls count as scarce for this long after: a batch's calls come in waves
# (creates, then their polls a task's length later), and a lull between two must
# not send the next wave's first polls out at the fast end.
SCARCE_HOLD_S = 60.0

# KEYS[1]: the timeline (the next free slot, microseconds); KEYS[2]: the slowdown
# factor. ARGV: the interval between slots and the longest wait the caller accepts,
# both in microseconds, and how many consecutive slots to reserve. Returns {the wait
# before the first reserved slot (>= 0), or -(the wait) when it is longer than that
# and nothing was reserved; the interval used}.
RESERVE_SLOTS = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
local slowdown = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
local interval = math.floor(tonumber(ARGV[1]) * slowdown)
local max_wait = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local wait = slot - now
if wait > max_wait then
  return {-wait, interval}
end
local ttl_ms = math.floor((wait + count * interval) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', slot + count * interval), 'PX', ttl_ms)
return {wait, interval}
"""

# KEYS[1]: the cooldown, KEYS[2]: the slowdown factor. ARGV: the cooldown (ms), the
# step, the cap, how long the slowdown holds (s). A 429 that finds a cooldown already
# running belongs to the same episode (its call was in the air): it only extends the
# cooldown. Returns the slowdown factor now in force.
COOL_DOWN = """
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
local slowdown = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
if left > 0 then
  if ms > left then
    redis.call('SET', KEYS[1], '1', 'PX', ms)
  end
  return tostring(slowdown)
end
redis.call('SET', KEYS[1], '1', 'PX', ms)
slowdown = math.min(slowdown * tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('SET', KEYS[2], tostring(slowdown), 'EX', tonumber(ARGV[4]))
return tostring(slowdown)
"""


class ApiRateLimiter:
    """Reserve a slot for one API call, waiting a bounded time for it."""

    def __init__(self, client: redis.Redis, keys: Keys, rate: str) -> None:
        item = parse(rate)
        self._client = client
        self._keys = keys
        self._interval_us = max(
            int(item.get_expiry() * 1_000_000 / (item.amount * PACING_MARGIN)), 1
        )
        self._reserve = client.register_script(RESERVE_SLOTS)
        self._cool_down = client.register_script(COOL_DOWN)
        self._lock = threading.Lock()
        self._cooldown_until = 0.0
        self._cooldown_checked_at = 0.0
        self._leased: deque[float] = deque()  # monotonic times of slots this process holds
        self._last_leased = float("-inf")  # when the last leased slot was given out
        self._leased_interval_s = self._interval_us / 1_000_000  # slowed down after 429s
        self._demand: deque[float] = deque()  # when acquire was called, the last second
        self._scarce_at = float("-inf")  # when a slot was last far off or a cooldown ran

    def acquire(self, max_wait_s: float) -> float:
        """Take a slot: 0.0 when taken (after sleeping until it), else the seconds to wait.

        A slot further off than ``max_wait_s`` is not reserved: the caller re-queues
        its step for the returned wait rather than hold a thread.
        """
        cooldown = self._cooldown_remaining()
        if cooldown > 0:
            self._scarce_at = time.monotonic()
            if cooldown > max_wait_s:
                return cooldown
            time.sleep(cooldown)
        max_wait_s = max(max_wait_s - max(cooldown, 0.0), 0.0)
        count = self._note_demand()
        at = self._take_leased(max_wait_s)
        if at is None:
            wait_us, interval_us = cast(
                list[int],
                self._reserve(
                    keys=[self._keys.rate_timeline, self._keys.rate_slowdown],
                    args=[self._interval_us, int(max_wait_s * 1_000_000), count],
                ),
            )
            if abs(wait_us) >= SCARCE_WAIT_S * 1_000_000:
                self._scarce_at = time.monotonic()
            if wait_us < 0:
                return -wait_us / 1_000_000
            first = time.monotonic() + wait_us / 1_000_000
            interval_s = interval_us / 1_000_000
            with self._lock:
                self._leased_interval_s = interval_s
                self._leased.extend(first + i * interval_s for i in range(count))
            at = self._take_leased(float("inf"))  # the first of them (or an earlier one)
            assert at is not None
        pause = at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        return 0.0

    def scarce(self) -> bool:
        """True while calls are the bottleneck: a slot was far off or a cooldown ran lately."""
        return time.monotonic() - self._scarce_at < SCARCE_HOLD_S

    def _note_demand(self) -> int:
        """Count this call; the slots to reserve at once: what this process uses in LEASE_S."""
        now = time.monotonic()
        with self._lock:
            self._demand.append(now)
            while self._demand[0] < now - DEMAND_WINDOW_S:
                self._demand.popleft()
            per_s = len(self._demand) / DEMAND_WINDOW_S
        return max(1, min(MAX_LEASE, int(per_s * LEASE_S)))

    def _take_leased(self, max_wait_s: float) -> float | None:
        """When to call on a slot this process leased, if that is within ``max_wait_s``."""
        now = time.monotonic()
        with self._lock:
            leased = self._leased
            while leased and leased[0] < now - LEASE_S:
                leased.popleft()  # unused for too long: dropped
            if not leased:
                return None
            at = max(leased[0], self._last_leased + self._leased_interval_s)
            if at - now > max_wait_s:
                return None
            leased.popleft()
            self._last_leased = at
            return at

    def cool_down(self, seconds: float) -> float:
        """After a 429: no worker calls the API for ``seconds``, and the pace slows.

        Returns the slowdown factor now in force (1.05 after one 429 episode).
        """
        millis = max(int(seconds * 1000), 1)
        slowdown = self._cool_down(
            keys=[self._keys.cooldown, self._keys.rate_slowdown],
            args=[millis, SLOWDOWN_STEP, MAX_SLOWDOWN, SLOWDOWN_HOLD_S],
        )
        with self._lock:
            self._cooldown_until = time.monotonic() + seconds
            self._cooldown_checked_at = time.monotonic()
        return float(cast(str, slowdown))

    def _cooldown_remaining(self) -> float:
        now = time.monotonic()
        with self._lock:
            if now - self._cooldown_checked_at < COOLDOWN_CHECK_INTERVAL_S:
                return self._cooldown_until - now
            self._cooldown_checked_at = now
        ttl_ms = self._client.pttl(self._keys.cooldown)  # -2: absent
        remaining = ttl_ms / 1000 if ttl_ms > 0 else 0.0
        with self._lock:
            self._cooldown_until = now + remaining
        return remaining
