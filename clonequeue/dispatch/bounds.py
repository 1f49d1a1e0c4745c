"""How long things may take, derived from the settings: the published recovery bound.

README, "Guarantees": after a fault ends (a worker killed, Redis crashed and back,
the API answering again), every open step's next message runs within
:func:`recovery_bound_s` — unless a queue's backlog holds that message, in which case
it runs when the backlog ahead of it has drained. The chaos suite measures "time to
recover" against it.

How the bound is made, for a step whose message was lost at the worst moment:

1. its `due` entry says when the message should run at the latest: at most
   :func:`longest_wait_s` after it was recorded (a countdown, a first poll, a create's
   lease);
2. the watchdog treats it as lost ``watchdog_grace_s`` after that;
3. the next watchdog pass sees it within ``watchdog_interval_s``, or one lock period
   later if a pass died holding the lock (:func:`watchdog_lock_s`);
4. the re-driven message is published at once and a worker runs it within
   :data:`RECONNECT_S` (the workers' broker connection retries back off to 30 s
   after a Redis outage; without one it runs in well under a second).
"""

from __future__ import annotations

from clonequeue.config import Settings
from clonequeue.store.connect import max_countdown_s

# A create's lease beyond its HTTP timeouts: the wait for a rate slot and scheduling.
# A create already claimed that finds no slot (rare: the fleet's pause lifted between
# its check and its claim) waits this long, else re-queues.
LIMITER_WAIT_S = 2.0
LEASE_MARGIN_S = 5.0
# A create (before its claim) or a poll of a task likely done waits its turn for a
# rate slot up to this long, else re-queues. Both wait in one queue per worker process
# (workers/limiter.py, the gate), so the fetch order (dispatch/fetch_order.py) decides
# their shares of the calls. Creates that waited only LIMITER_WAIT_S were turned away
# whenever a process's threads queued longer: with 2 workers of 50 threads at 38/s,
# ~2.6 s, and the polls took their share, so a batch's last creates came late (issue
# 15's bench, 2 workers: makespan 1.20-1.27x the bound, 1.10x with this). Before the
# gate, polls waited longer than creates so that creates' reservations never turned
# them away (a clone's poll came 48 s late, its audios with it).
TURN_WAIT_S = 4.0
# Celery's consumer retries a lost broker connection every 2, 4, ... up to 30 s.
RECONNECT_S = 30.0

__all__ = [
    "LIMITER_WAIT_S",
    "RECONNECT_S",
    "TURN_WAIT_S",
    "create_lease_s",
    "longest_wait_s",
    "max_countdown_s",
    "recovery_bound_s",
    "watchdog_lock_s",
]


def create_lease_s(settings: Settings) -> float:
    """A step `submitting` longer than this had its worker die with the create in the air."""
    return (
        settings.http_connect_timeout_s
        + settings.http_read_timeout_s
        + LIMITER_WAIT_S
        + LEASE_MARGIN_S
    )


def longest_wait_s(settings: Settings) -> float:
    """The longest a message may wait, once recorded, before it is due to run."""
    return max(max_countdown_s(settings), settings.poll_interval_max_s, create_lease_s(settings))


def watchdog_lock_s(settings: Settings) -> float:
    """How long a watchdog pass holds its lock; a pass that outlives it is fenced off."""
    return max(2 * settings.watchdog_interval_s, 10.0)


def recovery_bound_s(settings: Settings) -> float:
    """Seconds after a fault ends by which every open step's message has run again.

    With the default settings: 60 + 60 + 10 + 20 + 30 = 180 s. A backlog postpones
    re-drives only while the step's message can still be in its queue; that time comes
    on top (the backlog ahead of it drains at the workers' or the rate limit's pace).
    """
    return (
        longest_wait_s(settings)
        + settings.watchdog_grace_s
        + settings.watchdog_interval_s
        + watchdog_lock_s(settings)
        + RECONNECT_S
    )
