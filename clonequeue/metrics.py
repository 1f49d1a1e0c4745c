"""Business metrics Flower does not know about, for Prometheus.

Workers count what they do (API calls by endpoint and outcome, retries, characters
submitted, poll lag) in their own process and serve them with
``clonequeue worker --metrics-port N``. The fleet's state — jobs by state, queue
depths (Flower has none, flower #1191), slots in flight, parked steps, the pause —
is read from Redis by ``clonequeue exporter``, so it is right however many workers
run. README, "Metrics", says what each one means.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import kombu.exceptions
import redis.exceptions
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clonequeue.redis_refusals import write_refusal

log = logging.getLogger(__name__)

# A scrape that meets one of these reads nothing more: Redis (or the broker) went away.
# It answers without the fleet's gauges and says so in `clonequeue_redis_up`, once a
# warning per outage; any other error is a bug and fails the scrape as before.
UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # BusyLoadingError (a restart reading its AOF) too
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    OSError,
)

API_CALLS = Counter(
    "clonequeue_api_calls",
    "Calls to the JimmyAI API by endpoint and outcome.",
    ["endpoint", "outcome"],
)
API_SECONDS = Histogram(
    "clonequeue_api_call_seconds",
    "Duration of JimmyAI API calls.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CREATE_RETRIES = Counter(
    "clonequeue_create_retries",
    "Creates put back to pending after a transient error.",
    ["reason"],
)
CHARS_SUBMITTED = Counter(
    "clonequeue_chars_submitted",
    "Billed characters of creates the API accepted.",
    ["kind"],
)
STEPS_FINISHED = Counter(
    "clonequeue_steps_finished",
    "Clone and audio steps that reached a final state.",
    ["kind", "state"],
)
POLL_LAG = Histogram(
    "clonequeue_poll_lag_seconds",
    "How late a poll ran after its countdown was due.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


def outcome_of(exc: BaseException | None) -> str:
    """A short, bounded label for how an API call ended."""
    if exc is None:
        return "ok"
    from clonequeue import errors

    for cls, label in (
        (errors.OutcomeUnknownError, "unknown"),
        (errors.RateLimitedError, "rate_limited"),
        (errors.ApiUnavailableError, "unavailable"),
        (errors.AuthenticationError, "auth"),
        (errors.InsufficientBalanceError, "balance"),
        (errors.RejectedError, "rejected"),
    ):
        if isinstance(exc, cls):
            return label
    return "error"


class FleetCollector(Collector):
    """Gauges read from Redis and the broker at scrape time.

    ``ping`` (the store's PING) decides ``clonequeue_redis_up``; without it, whether the
    whole read worked does. When the read fails (see :data:`UNREACHABLE`) the scrape
    still answers, at once, with ``clonequeue_redis_up`` and no fleet gauge: a count
    from before the outage would look current.
    """

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        *,
        ping: Callable[[], object] | None = None,
    ) -> None:
        from clonequeue.workers.rate_view import RateHistory

        self._snapshot = snapshot
        self._ping = ping
        self._rate_history = RateHistory()
        self._lock = threading.Lock()  # scrapes may overlap (one thread each)
        self._down_since: float | None = None
        self._down_where = "Redis"

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        started = time.monotonic()
        redis_up, data = self._read()
        yield GaugeMetricFamily(
            "clonequeue_redis_up",
            "1 when Redis answered this scrape; 0: it did not, and the fleet's gauges are absent.",
            value=1.0 if redis_up else 0.0,
        )
        if data is not None:
            yield GaugeMetricFamily(
                "clonequeue_redis_refuses_writes",
                "1 when Redis refuses writes (full under noeviction, or its AOF or snapshot "
                "failing: MISCONF): no job moves until memory or disk is freed.",
                value=float(data.get("redis_refuses_writes", 0)),
            )
            if "jobs" in data:
                yield from self._fleet_metrics(data)
        yield GaugeMetricFamily(
            "clonequeue_exporter_scrape_seconds",
            "Time to read the fleet's state.",
            value=time.monotonic() - started,
        )

    def _read(self) -> tuple[bool, dict[str, Any] | None]:
        """(Redis answered, the fleet's state or None when it could not be read)."""
        if self._ping is not None:
            try:
                self._ping()
            except UNREACHABLE as exc:
                self._outage("Redis", exc, redis_up=False)
                return False, None
        try:
            data = self._snapshot()
        except redis.exceptions.ResponseError as exc:
            if write_refusal(exc) is None:
                raise
            # up, but refusing what a read on the broker's side needs (kombu's pipelines)
            self._outage("Redis", exc, redis_up=True)
            return True, {"redis_refuses_writes": 1}
        except UNREACHABLE as exc:
            where = "Redis" if self._ping is None else "Redis or the broker"
            self._outage(where, exc, redis_up=self._ping is not None)
            return self._ping is not None, None
        with self._lock:
            if self._down_since is not None:
                log.info(
                    "exporter: %s answers again after %.0f s; the fleet's gauges are back",
                    self._down_where,
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
        return True, data

    def _outage(self, where: str, exc: BaseException, *, redis_up: bool) -> None:
        """One warning when an outage starts, not one (with a traceback) per scrape."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since, self._down_where = time.monotonic(), where
        reason = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
        log.warning(
            "exporter: cannot read the fleet's state from %s (%s: %s); scrapes answer "
            "clonequeue_redis_up %d without the fleet's gauges until it answers again",
            where,
            type(exc).__name__,
            reason,
            1 if redis_up else 0,
        )

    def _fleet_metrics(
        self, data: dict[str, Any]
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        jobs = GaugeMetricFamily(
            "clonequeue_jobs", "Jobs of unfinished batches by state.", labels=["state"]
        )
        for state, count in data["jobs"].items():
            jobs.add_metric([state], count)
        yield jobs
        depth = GaugeMetricFamily(
            "clonequeue_queue_depth", "Messages waiting on the broker per queue.", labels=["queue"]
        )
        for queue, count in data["queues"].items():
            depth.add_metric([queue], count)
        yield depth
        for name, key, help_text in _FLEET_GAUGES:
            yield GaugeMetricFamily(name, help_text, value=float(data[key]))
        if data.get("rate") is not None:
            yield from self._rate_metrics(data["rate"])

    def _rate_metrics(self, rate: Any) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """The adaptive API rate (README, "Limits"); per-minute figures over the last minute."""
        figures = self._rate_history.add(rate)
        gauges = (
            ("clonequeue_api_rate", rate.rate, "The fleet's API pace now, calls/s."),
            (
                "clonequeue_api_rate_ceiling",
                rate.ceiling,
                "CLONEQUEUE_API_RATE_LIMIT paced 2 % under, calls/s (absent for auto).",
            ),
            (
                "clonequeue_api_rate_learned",
                rate.learned,
                "The pace at which the last 429s began, calls/s.",
            ),
            ("clonequeue_api_429_per_minute", figures.http_429_per_min, "429s, last minute."),
            (
                "clonequeue_api_failed_per_minute",
                figures.failed_per_min,
                "Calls with no usable answer (5xx, timeouts, no connection), last minute.",
            ),
            (
                "clonequeue_api_useful_share",
                figures.useful_share,
                "Share of the last minute's calls that moved work on (create accepted, task done).",
            ),
        )
        for name, value, help_text in gauges:
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=float(value))
        for name, value, help_text in (
            ("clonequeue_rate_calls", rate.calls, "API call slots taken by the fleet."),
            ("clonequeue_rate_useful_calls", rate.useful, "Calls that moved work on."),
            ("clonequeue_rate_429", rate.http_429, "Calls the API answered 429."),
            ("clonequeue_rate_failed_calls", rate.failed, "Calls with no usable answer."),
        ):
            yield CounterMetricFamily(name, help_text, value=float(value))


_FLEET_GAUGES: Iterable[tuple[str, str, str]] = (
    ("clonequeue_in_flight", "in_flight", "Remote tasks submitted and not yet finished."),
    ("clonequeue_parked", "parked", "Creates waiting for a slot or for the pause to lift."),
    ("clonequeue_overdue", "overdue", "Steps whose message is later than the watchdog grace."),
    ("clonequeue_paused", "paused", "1 while creates are paused fleet-wide."),
    (
        "clonequeue_api_wait_seconds",
        "api_wait_s",
        "Seconds left of a long Retry-After that every worker waits out (0: none).",
    ),
    ("clonequeue_chars_spent", "chars_spent", "Billed characters submitted minus refunds."),
    ("clonequeue_workers_running", "workers_running", "Workers seen in the last 20 s."),
    (
        "clonequeue_unknown_jobs_kept",
        "unknown_kept",
        "Jobs unknown in every batch kept, finished or not (the newest 1,000 batches).",
    ),
    (
        "clonequeue_watchdog_age_seconds",
        "watchdog_age_s",
        "Seconds since the last watchdog pass (a day when none in the last day).",
    ),
)
