"""The global API rate limit, shared by every worker process through Redis.

Celery's own ``rate_limit`` is per worker; the provider counts all of our calls.
The limit is paced, not windowed: each call reserves the next free slot on one
timeline in Redis (GCRA, the generic cell rate algorithm), so "25/second" means a
call every 40 ms. A moving window lets a whole second's worth go at once; the
threads of a busy host then spread that burst out, it meets the next one at the
API, and a sliding-window provider answers 429 although we kept our limit (seen in
CI at 25/s against an API allowing 30/s). Slot times come from the Redis server's
clock, so hosts with skewed clocks share one timeline.

The pace is adaptive (workers/rate_lua.py says how it moves): one rate in Redis,
per token, that a 429 cuts and that climbs back while calls go through, never above
the configured rate paced ``PACING_MARGIN`` (2 %) under it (the API counts arrivals,
and they jitter); ``auto`` has no ceiling and starts at ``AUTO_START_RATE``. The
state outlives the workers (a week's TTL), so a restart starts from what was learned.

A 429 whose ``Retry-After`` is longer than ``FLEET_PAUSE_MIN_S`` also sets a
fleet-wide cooldown: no worker calls the API until it ends. A shorter one (a
per-second window's usual "1") is honoured by the call that got it, which is
re-queued at least that far out, while the cut slows everyone else; stopping the
whole fleet for a second after every 429 cost more calls than the 429 itself.

``scarce()`` tells the scheduler when calls are the bottleneck (a slot was far off,
or a 429 came, in the last minute): then a poll that finds a task still running
costs a create or a poll that would have found a result, and polls move to the
slow end of the provider's cadence.

A busy process leases a few consecutive slots per round trip (as many as it uses in
``LEASE_S``, at most ``MAX_LEASE``) and hands them to its threads: at hundreds of
polls a second the reservation was ~5 % of a worker's CPU per poll. The slots are
still the fleet's one timeline. A leased slot may be spent a little late (its thread
was busy), but never more than ``LEASE_S`` late and never sooner than one interval
after the process's previous leased call, so leases never add up to a burst; one
left unused longer is dropped.

A process holds at most ``AHEAD_S`` of slots ahead of now; its other threads wait in
the process (the "gate") until the slots ahead of them are spent, and give up as
before when their wait would pass ``max_wait_s``. Without that bound, 50 threads at
20/s held 2.5 s of slots reserved at the pace of 2.5 s before: a pace that rose was
followed only that late, so a probe upwards met 429s seconds after it had passed the
limit (issue 15). Waiting here costs no Redis round trip.

A cut moves the slots already handed out: each process holds up to ``AHEAD_S`` of
them (2.5 s before the gate), so that many at the old pace, per process, would
otherwise still go out after a 429 (at a limit that halved, half of them as 429s).
Each cut has a number, a time, a stretch factor and a pause (rate_lua.py); a process
learns of one from its own 429, from any reservation's answer, or from a check every
``CUT_CHECK_S`` while one of its threads waits, and every slot it holds that lies
after the cut moves to
``cut + pause + (slot - cut) * factor`` — the same move the script made on the
timeline, so the fleet's slots stay in one order and one pace. A slot moved more than
``CUT_KEEP_S`` past the cut is given up (its caller re-queues its step instead of
holding a thread, or a create's claim, through a pause), and the script starts the
timeline there, not after every moved slot: given up one by one, the stretched slots
of a halved pace left the API idle for 4 s (issue 15's drop to 20/s).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import cast

import redis
from limits import parse

from clonequeue.api.responses import retry_after_text
from clonequeue.config import Settings
from clonequeue.store.keys import Keys
from clonequeue.workers.rate_lua import COOL_DOWN, CUT_INFO, CUT_KEEP_S, RESERVE

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_START_RATE = 10.0  # calls/s: where `auto` starts when nothing was learned yet
STATE_TTL_S = 7 * 86_400  # what was learned is kept this long after the last call
NAME_EVERY_S = 60.0  # how often a process names its state the fleet's (Keys.rate_current)
FLEET_PAUSE_MIN_S = 2.0  # a Retry-After this long (or longer) pauses every worker
COOLDOWN_CHECK_INTERVAL_S = 0.25
# A step that meets a fleet-wide wait is re-queued to look again this soon, not for the
# whole wait: `clonequeue resume` ends a wait early (Retry-After may say 10 minutes).
COOLDOWN_RECHECK_S = 30.0
LEASE_S = 0.05  # lease what this process uses in this long...
MAX_LEASE = 10  # ...but never more slots than this at once
DEMAND_WINDOW_S = 1.0
PACING_MARGIN = 0.98  # pace at this share of the configured rate
SCARCE_WAIT_S = 0.25  # a slot this far off means demand is above the rate...
# ...and calls count as scarce for this long after: a batch's calls come in waves
# (creates, then their polls a task's length later), and a lull between two must
# not send the next wave's first polls out at the fast end.
SCARCE_HOLD_S = 60.0
CUT_CHECK_S = 0.1  # a waiting thread's process looks for other processes' cuts this often
MOVED_SLACK_S = 1.0  # a held slot a cut moved this far past the caller's wait is given up
SPARE_WAIT_S = 0.05  # a call that only takes spare capacity takes a slot this near, or none
AHEAD_S = 0.5  # a process holds slots at most this far ahead; its other threads wait in it
SENT_KEEP_S = 2.0  # a 429 this long after the thread's last slot answers no call of ours we know


@dataclass(frozen=True, slots=True)
class Cut:
    """One cut of the pace as this process applies it: slots after ``at`` (monotonic) move."""

    seq: int
    at: float
    factor: float
    pause_s: float

    def move(self, slot: float) -> float:
        if slot <= self.at:
            return slot
        return self.at + self.pause_s + (slot - self.at) * self.factor

    def keeps(self, moved: float) -> bool:
        """Whether a slot moved to ``moved`` is still held (else given up: see rate_lua)."""
        return moved <= self.at + CUT_KEEP_S

    def free_from(self) -> float:
        """Where the timeline starts again after this cut: past every slot it kept."""
        return self.at + max(self.pause_s, CUT_KEEP_S)


def ceiling_per_s(rate: str) -> float | None:
    """The configured rate in calls/s, paced ``PACING_MARGIN`` under; None for ``auto``."""
    if rate.strip().lower() == AUTO:
        return None
    item = parse(rate)
    return item.amount * PACING_MARGIN / item.get_expiry()


@functools.lru_cache(maxsize=8)
def token_id(token: str | None) -> str:
    """A short, one-way name for a token: the learned rate is the token's, not the fleet's.

    A slow hash (scrypt, ~60 ms once per process and token): the name sits in a Redis key
    that anyone who reads Redis sees, and a fast unsalted one let them confirm a guessed
    token offline at GPU speed (security QA pass), which matters for tokens with a known
    prefix and a short random part."""
    digest = hashlib.scrypt(
        (token or "").encode(), salt=b"clonequeue-rate", n=2**14, r=8, p=1, dklen=8
    )
    return digest.hex()


def rate_limiter(settings: Settings, client: redis.Redis, keys: Keys) -> ApiRateLimiter:
    """The fleet's adaptive rate limiter for the settings' token."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return ApiRateLimiter(client, keys, settings.api_rate_limit, token=token_id(token))


class ApiRateLimiter:
    """Reserve a slot for one API call, waiting a bounded time for it."""

    def __init__(
        self, client: redis.Redis, keys: Keys, rate: str, *, token: str | None = None
    ) -> None:
        """``token``: the token's :func:`token_id` (None: no token's)."""
        self._client = client
        self._keys = keys
        self._state_key = keys.rate_state(token or token_id(None))
        self._ceiling = ceiling_per_s(rate)
        self._start = self._ceiling or AUTO_START_RATE
        self._reserve = client.register_script(RESERVE)
        self._cool_down = client.register_script(COOL_DOWN)
        self._cut_info = client.register_script(CUT_INFO)
        self._lock = threading.Lock()
        self._cooldown_until = 0.0
        self._cooldown_checked_at = 0.0
        # slots this process holds: (monotonic time, when it was reserved)
        self._leased: deque[tuple[float, float]] = deque()
        self._last_leased = float("-inf")  # when the last leased slot was given out
        self._leased_interval_s = 1.0 / self._start  # the pace of the last lease
        self._demand: deque[float] = deque()  # when acquire was called, the last second
        self._scarce_at = float("-inf")  # when a slot was last far off or a 429 came
        self._useful = 0  # useful calls not yet counted in Redis (sent with the next lease)
        self._failed = 0  # calls with no usable answer, not yet counted (the same way)
        self._cuts: deque[Cut] = deque(maxlen=16)  # the latest cuts, oldest first
        self._cut_learned = threading.Condition(self._lock)  # notified with each new cut
        self._cuts_checked_at = float("-inf")
        self._gate = threading.Lock()
        self._queue: deque[threading.Event] = deque()  # threads waiting to reserve, in turn
        self._held_until = float("-inf")  # the latest slot this process reserved
        self._reserving = 0  # threads of this process between the gate and their reply
        self._named_at = float("-inf")  # when this state was last named the fleet's
        self._sent = threading.local()  # .at: when this thread's last slot came (monotonic)

    @property
    def state_key(self) -> str:
        return self._state_key

    def acquire(self, max_wait_s: float) -> float:
        """Take a slot: 0.0 when taken (after sleeping until it), else the seconds to wait.

        A slot further off than ``max_wait_s`` is not reserved: the caller re-queues
        its step for the returned wait rather than hold a thread. The wait returned is
        at most ``COOLDOWN_RECHECK_S``: a long Retry-After moves the fleet's slots past
        it too, and `clonequeue resume` may end it early.
        """
        return min(self._acquire(max_wait_s), COOLDOWN_RECHECK_S)

    def _acquire(self, max_wait_s: float) -> float:
        cooldown = self._cooldown_remaining()
        if cooldown > 0:
            self._scarce_at = time.monotonic()
            if cooldown > max_wait_s:
                return cooldown
            time.sleep(cooldown)
        max_wait_s = max(max_wait_s - max(cooldown, 0.0), 0.0)
        # the cuts' own rule (Cut.keeps) gives up a moved slot; this only bounds a thread's
        # wait through a run of cuts
        give_up_at = time.monotonic() + max_wait_s + CUT_KEEP_S + MOVED_SLACK_S
        count = self._note_demand()
        taken = self._take_leased(max_wait_s)
        if taken is None:
            deadline = time.monotonic() + max_wait_s
            turned_away = self._enter_gate(deadline)
            if turned_away:
                return turned_away
            try:
                taken = self._take_leased(deadline - time.monotonic())  # leased meanwhile
                if taken is None:
                    reserved = self._reserve_slots(count, deadline)
                    if isinstance(reserved, float):
                        return reserved
                    taken = reserved
            finally:
                self._leave_gate()
        wait = self._wait_for(*taken, give_up_at=give_up_at)
        if wait == 0.0:
            self._sent.at = time.monotonic()
        return wait

    def _sent_ago_us(self) -> int:
        """How long ago this thread's last slot came (µs): when the call its 429 answers
        went out; -1 when unknown (none, or too long ago to be that call)."""
        at: float | None = getattr(self._sent, "at", None)
        ago = time.monotonic() - (at if at is not None else float("-inf"))
        return int(ago * 1_000_000) if ago < SENT_KEEP_S else -1

    def _enter_gate(self, deadline: float) -> float:
        """0.0 once this thread may reserve, else the seconds it would still wait when
        that passes ``deadline``. Threads pass in turn, each when its process holds at
        most ``AHEAD_S`` of slots ahead (a reservation under way counting as one)."""
        me = threading.Event()
        with self._gate:
            self._queue.append(me)
        try:
            while True:
                with self._gate:
                    now = time.monotonic()
                    position = self._queue.index(me)
                    ahead = max(self._held_until - now, 0.0)
                    interval = self._leased_interval_s
                    if position == 0 and ahead + self._reserving * interval <= AHEAD_S:
                        self._reserving += 1
                        return 0.0
                    self._scarce_at = now
                    soonest = ahead + (position + 1) * interval
                    if now + soonest > deadline:
                        return max(soonest, CUT_CHECK_S)
                    me.clear()  # set by the thread ahead (or the reservation) when it leaves
                    wait = ahead - AHEAD_S if position == 0 else 0.0
                me.wait(max(wait, 0.001) if wait > 0 else deadline - now)
        finally:
            with self._gate:
                self._queue.remove(me)
                if self._queue:
                    self._queue[0].set()

    def _leave_gate(self) -> None:
        with self._gate:
            self._reserving -= 1
            if self._queue:
                self._queue[0].set()

    def _reserve_slots(self, count: int, deadline: float) -> tuple[float, float] | float:
        """Reserve ``count`` slots on the fleet's timeline: the first (when, when
        reserved), or the seconds to wait when it lies past ``deadline``."""
        reserved_at = time.monotonic()
        with self._lock:
            useful, self._useful = self._useful, 0
            failed, self._failed = self._failed, 0
        reply = cast(
            list[int],
            self._reserve(
                keys=[self._keys.rate_timeline, self._state_key, self._keys.rate_sends],
                args=[
                    self._ceiling or 0,
                    max(int((deadline - reserved_at) * 1_000_000), 0),
                    count,
                    useful,
                    self._start,
                    STATE_TTL_S,
                    failed,
                ],
            ),
        )
        wait_us, interval_us = reply[0], reply[1]
        self._learn_cut(reply[2:])
        if reserved_at >= self._named_at + NAME_EVERY_S:
            # readers without the token find this state (the exporter runs without one)
            self._named_at = reserved_at
            self._client.set(self._keys.rate_current, self._state_key, ex=STATE_TTL_S)
        if abs(wait_us) >= SCARCE_WAIT_S * 1_000_000:
            self._scarce_at = time.monotonic()
        if wait_us < 0:
            return -wait_us / 1_000_000
        first = time.monotonic() + wait_us / 1_000_000
        interval_s = interval_us / 1_000_000
        with self._lock:  # the first is this thread's; the rest go to the next ones
            self._leased_interval_s = interval_s
            self._leased.extend((first + i * interval_s, reserved_at) for i in range(1, count))
            self._last_leased = max(self._last_leased, first)
        with self._gate:
            self._held_until = max(self._held_until, first + (count - 1) * interval_s)
        return first, reserved_at

    def _wait_for(self, at: float, reserved_at: float, *, give_up_at: float) -> float:
        """Sleep until the slot ``at``, moving it by every cut made after it was reserved.

        0.0 once there; if a cut moved it past ``give_up_at`` (a long pause), the
        slot is given up and the wait returned, so the caller re-queues its step
        rather than hold a thread (or a create's claim) through the pause.
        """
        seq = 0
        while True:
            given_up = None
            with self._lock:
                for cut in self._cuts:
                    if cut.seq > seq and cut.at > reserved_at and given_up is None:
                        at = cut.move(at)
                        if not cut.keeps(at):
                            given_up = min(at, cut.free_from())
                    seq = max(seq, cut.seq)
            now = time.monotonic()
            if given_up is not None:
                return max(given_up - now, CUT_CHECK_S)
            pause = at - now
            if at > give_up_at:
                return pause
            if pause <= 0:
                return 0.0
            self._sleep_unless_cut(min(pause, CUT_CHECK_S), seq)
            if pause > CUT_CHECK_S:
                self._check_cuts()

    def _sleep_unless_cut(self, seconds: float, seq: int) -> None:
        """Sleep ``seconds``, or less if this process learns of a cut after ``seq``: a
        cut moves the slot at once (sleeping through it, up to ``CUT_CHECK_S`` of
        slots per process went out at the old pace: 429s at a fall)."""
        with self._cut_learned:
            self._cut_learned.wait_for(
                lambda: bool(self._cuts) and self._cuts[-1].seq > seq, seconds
            )

    def _check_cuts(self) -> None:
        """At most every ``CUT_CHECK_S`` per process: a cut another process made?"""
        now = time.monotonic()
        with self._lock:
            if now - self._cuts_checked_at < CUT_CHECK_S:
                return
            self._cuts_checked_at = now
        self._learn_cut(cast(list[int], self._cut_info(keys=[self._state_key])))

    def _learn_cut(self, info: list[int]) -> None:
        """Note the last cut (number, age µs, factor x 1e6, pause µs) if it is new here."""
        seq = int(info[0])
        with self._lock:
            if seq == 0 or (self._cuts and self._cuts[-1].seq >= seq):
                return
            cut = Cut(
                seq=seq,
                at=time.monotonic() - int(info[1]) / 1_000_000,
                factor=int(info[2]) / 1_000_000,
                pause_s=int(info[3]) / 1_000_000,
            )
            self._cuts.append(cut)
            self._cut_learned.notify_all()
            kept: deque[tuple[float, float]] = deque()
            for slot, since in self._leased:
                if cut.at > since:
                    slot = cut.move(slot)
                    if not cut.keeps(slot):
                        continue  # given up, as the timeline was (rate_lua)
                kept.append((slot, since))
            self._leased = kept
        with self._gate:
            self._held_until = min(cut.move(self._held_until), cut.free_from())

    def useful(self) -> None:
        """Count a call that moved work on (a create accepted, a poll that found an end).

        Counted here and sent with this process's next reservation: no round trip.
        """
        with self._lock:
            self._useful += 1

    def failed(self) -> None:
        """Count a call that got no usable answer (a 5xx, a timeout, no connection, an
        unreadable or refused answer; not a 429): `status --watch` and the exporter show
        them a minute, so an API outage is not read as slow tasks. Sent as ``useful`` is."""
        with self._lock:
            self._failed += 1

    def scarce(self, within_s: float = SCARCE_HOLD_S) -> bool:
        """True while calls are the bottleneck: a slot was far off or a 429 came within
        the last ``within_s``."""
        return time.monotonic() - self._scarce_at < within_s

    def _note_demand(self) -> int:
        """Count this call; the slots to reserve at once: what this process uses in LEASE_S."""
        now = time.monotonic()
        with self._lock:
            self._demand.append(now)
            while self._demand[0] < now - DEMAND_WINDOW_S:
                self._demand.popleft()
            per_s = len(self._demand) / DEMAND_WINDOW_S
        return max(1, min(MAX_LEASE, int(per_s * LEASE_S)))

    def _take_leased(self, max_wait_s: float) -> tuple[float, float] | None:
        """A slot this process leased, if within ``max_wait_s``: (when, when reserved)."""
        now = time.monotonic()
        with self._lock:
            leased = self._leased
            while leased and leased[0][0] < now - LEASE_S:
                leased.popleft()  # unused for too long: dropped
            if not leased:
                return None
            slot, reserved_at = leased[0]
            at = max(slot, self._last_leased + self._leased_interval_s)
            if at - now > max_wait_s:
                return None
            leased.popleft()
            self._last_leased = at
            return at, reserved_at

    def cool_down(self, seconds: float) -> float:
        """After a 429: cut the fleet's pace; pause every worker if ``seconds`` is long.

        Returns the pace now in force (calls/s). The slots this process holds move
        with the cut (see the module's docstring).
        """
        millis = max(int(seconds * 1000), 1)
        reply = cast(
            list[str | int],
            self._cool_down(
                keys=[
                    self._keys.cooldown,
                    self._state_key,
                    self._keys.rate_timeline,
                    self._keys.rate_sends,
                ],
                args=[
                    millis,
                    int(FLEET_PAUSE_MIN_S * 1000),
                    self._ceiling or 0,
                    self._start,
                    STATE_TTL_S,
                    self._sent_ago_us(),
                ],
            ),
        )
        self._learn_cut([int(x) for x in reply[1:]])
        if seconds >= FLEET_PAUSE_MIN_S:
            log.warning(
                "the API answered 429 with Retry-After %s: no worker calls it until "
                "%s (`clonequeue resume` ends the wait now)",
                retry_after_text(seconds),
                time.strftime("%H:%M:%S", time.localtime(time.time() + seconds)),
            )
        now = time.monotonic()
        with self._lock:
            self._scarce_at = now
            if seconds >= FLEET_PAUSE_MIN_S:
                self._cooldown_until = now + seconds
                self._cooldown_checked_at = now
        return float(reply[0])

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
        if remaining == 0:
            with self._gate:
                # only a wait's pause puts slots this far ahead (a cut keeps the rest within
                # CUT_KEEP_S); with no wait in force, `clonequeue resume` ended it early
                if self._held_until > now + CUT_KEEP_S + MOVED_SLACK_S:
                    self._held_until = now
                    if self._queue:
                        self._queue[0].set()
        return remaining
