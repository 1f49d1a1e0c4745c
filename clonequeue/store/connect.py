"""The store's Redis client and the limits its scripts enforce, built from the settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from clonequeue.config import Settings
from clonequeue.config.redis_urls import is_sentinel_url, parse_sentinel_url
from clonequeue.constants import REDIS_RIDE_OUT_S
from clonequeue.store.health_ping import connection_class_for, tolerant
from clonequeue.store.jobs import JobStore, StoreLimits
from clonequeue.store.keys import Keys

# A command's read waits this long on a Sentinel-managed master before the connection is
# dropped and the sentinels asked again (30 s on a plain Redis, which has no other): a
# hung master stalled the fleet that long after its failover (QA pass).
SENTINEL_SOCKET_TIMEOUT_S = 10.0


def redis_client(
    url: str,
    *,
    ride_out_s: float = REDIS_RIDE_OUT_S,
    sentinel_master: str = "mymaster",
    sentinel_password: str | None = None,
    timeouts: ClientTimeouts | None = None,
) -> redis.Redis:
    """A Redis client for the job store (strings decoded) that rides out a Redis restart.

    A restart refuses connections, then answers LOADING while it reads its AOF; each
    command is retried through about ``ride_out_s`` of that, so a worker's thread or
    `status --wait` waits instead of failing. redis-py's own default gives up after
    about 2 s, and it changes between releases.

    A ``sentinel://`` URL gives redis-py's Sentinel client for ``sentinel_master``:
    every new connection asks the sentinels where the master is, and a demoted
    master's READONLY drops the connection (redis-py turns it into a ConnectionError),
    so the same retries carry a command over a failover to the new master.
    ``timeouts`` replaces both the ride-out and the socket timeouts (a scrape's).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "health_check_interval": 30,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "retry": ride_out_retry(ride_out_s),
    }
    if timeouts is not None:
        options.update(
            socket_connect_timeout=timeouts.connect_s,
            socket_timeout=timeouts.read_s,
            retry=Retry(
                ExponentialBackoff(cap=0.2, base=0.05),
                timeouts.retries,
                supported_errors=(redis.exceptions.ConnectionError,),
            ),
        )
    if is_sentinel_url(url):
        if timeouts is None:  # a master that hangs is given up sooner: another may be there
            options["socket_timeout"] = SENTINEL_SOCKET_TIMEOUT_S
        sentinel = sentinel_for(url, sentinel_password)
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
            sentinel_master,
            connection_class=FollowsTheMaster,
            **sentinel_master_options(url),
            **options,
        )
        return client
    return redis.Redis.from_url(url, connection_class=connection_class_for(url), **options)


class _AsksWhereTheMasterIs:
    """Mixin for redis-py's SentinelManagedConnection: every reconnect asks the sentinels.

    redis-py reconnects a dropped connection inside a command's retries through
    ``connect_check_health``, which its Sentinel connection does not override (only
    ``connect``): the connection came back to the address it had. A master that hangs
    (SIGSTOP, a paused VM, a black-holed host) still completes TCP handshakes, so each
    retry waited out its read timeout on the old master, long after the sentinels had
    promoted another: writes stopped until the old one woke (QA pass; and a killed
    master was refused until the retries ran out).
    """

    _sock: Any
    connection_pool: Any
    host: str
    port: int

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(  # type: ignore[misc]
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


FollowsTheMaster = type(
    "FollowsTheMaster", (_AsksWhereTheMasterIs, tolerant(SentinelManagedConnection)), {}
)


@dataclass(frozen=True)
class ClientTimeouts:
    """A client that must answer soon (the exporter's scrapes): ``retries`` quick retries
    of a connection error, and these socket timeouts."""

    connect_s: float
    read_s: float
    retries: int


def sentinel_for(url: str, password: str | None = None) -> Sentinel:
    """redis-py's Sentinel for every sentinel a ``sentinel://`` URL names."""
    parsed = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if password:
        sentinel_kwargs["password"] = password
    return Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call,unused-ignore]


def sentinel_master_options(url: str) -> dict[str, Any]:
    """The master's login and db from a ``sentinel://`` URL (kombu's reading of it)."""
    parsed = parse_sentinel_url(url)
    return {"db": parsed.db, "username": parsed.username, "password": parsed.password}


def store_client(
    settings: Settings,
    *,
    ride_out_s: float = REDIS_RIDE_OUT_S,
    timeouts: ClientTimeouts | None = None,
) -> redis.Redis:
    """:func:`redis_client` for ``settings.redis_url`` (and its Sentinel settings)."""
    password = settings.sentinel_password
    return redis_client(
        settings.redis_url,
        ride_out_s=ride_out_s,
        sentinel_master=settings.sentinel_master,
        sentinel_password=password.get_secret_value() if password else None,
        timeouts=timeouts,
    )


def ride_out_retry(seconds: float) -> Retry:
    """Retries spaced 0.1, 0.2, 0.4, 0.8 s, then 1 s apart, for about ``seconds`` in all."""
    retries = 4 + math.ceil(max(seconds - 1.5, 0.0))
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries)


def max_countdown_s(settings: Settings) -> float:
    """Longest countdown we give a message: far below the broker's visibility timeout.

    A Redis-broker message waiting in a worker for its countdown comes back after the
    visibility timeout (counted from the fetch, kombu #337); longer waits are left to
    the watchdog, which dispatches steps from the `due` set when they are due.
    """
    return settings.visibility_timeout_s / 5


def store_limits(settings: Settings) -> StoreLimits:
    return StoreLimits(
        max_in_flight=settings.max_in_flight,
        budget_chars=settings.budget_chars or 0,
        retention_s=int(settings.retention_s),
        grace_s=settings.watchdog_grace_s,
        job_deadline_s=settings.job_deadline_s,
        submit_max_attempts=settings.submit_max_attempts,
        unknown_pause_after=settings.unknown_pause_after,
        first_poll_target=settings.first_poll_hit_target,
        first_poll_min_s=settings.poll_interval_min_s,
        first_poll_max_s=max_countdown_s(settings),
        first_poll_lag_s=settings.poll_interval_max_s,
        task_lost_after_s=settings.task_lost_after_s,
        min_replicas=settings.redis_min_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
        replica_window_s=settings.redis_replica_window_s,
    )


def job_store(settings: Settings, client: redis.Redis | None = None) -> JobStore:
    """The job store for these settings (producers, workers and operators use it)."""
    return JobStore(
        client or store_client(settings),
        Keys(settings.namespace),
        store_limits(settings),
    )
