"""``clonequeue exporter``: the fleet's state from Redis as Prometheus metrics."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

import typer

from clonequeue.cli import context
from clonequeue.cli.listen import listening

if TYPE_CHECKING:
    import redis
    from prometheus_client import CollectorRegistry

    from clonequeue.config import Settings
    from clonequeue.services import Services

# A scrape must answer well inside Prometheus' default 10 s timeout, Redis down or not:
# one quick retry of a refused or dropped connection (one Redis closed since the last
# scrape), none of a timeout; a second to connect, two for an answer. The store's
# usual client rides out a restart for 30 s.
SCRAPE_RETRIES = 1
SCRAPE_CONNECT_TIMEOUT_S = 1.0
SCRAPE_SOCKET_TIMEOUT_S = 2.0


def exporter(
    port: int = typer.Option(9808, "--port", "-p", help="Serve /metrics on this port."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (0.0.0.0 to let Prometheus in)."
    ),
) -> None:
    """Serve fleet metrics (jobs by state, queue depths, in flight, parked, paused, spend).

    Workers serve their own counters with `clonequeue worker --metrics-port`; run one
    exporter per fleet for the rest. While Redis does not answer, a scrape still answers
    at once: the process metrics and clonequeue_redis_up 0, without the fleet's gauges.
    See README, "Metrics".
    """
    from prometheus_client import start_http_server

    from clonequeue.logs import setup_logging
    from clonequeue.services import Services

    settings = context.settings()
    setup_logging(settings)
    services = Services(settings)
    services.redis  # fail now, with one clear line, if Redis is unreachable  # noqa: B018
    services.redis = scrape_client(settings)  # from now on, a Redis gone fails fast
    with listening(host, port, "--port"):
        server, thread = start_http_server(port, addr=host, registry=exporter_registry(services))
    typer.echo(f"exporter listening on http://{host}:{port}/metrics", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(timeout=5)


def scrape_client(settings: Settings) -> redis.Redis:
    """The store's client for scrapes: a Redis that went away fails a read in ~0.1 s
    (refused) to ~2 s (no answer), not after the store's 30 s ride-out."""
    from clonequeue.store.connect import ClientTimeouts, store_client

    timeouts = ClientTimeouts(SCRAPE_CONNECT_TIMEOUT_S, SCRAPE_SOCKET_TIMEOUT_S, SCRAPE_RETRIES)
    return store_client(settings, timeouts=timeouts)


def exporter_registry(services: Services) -> CollectorRegistry:
    """The fleet's gauges (PING decides ``clonequeue_redis_up``) and the exporter's own
    process metrics (``process_*``, ``python_*``), which answer whatever Redis does."""
    from prometheus_client import (
        GC_COLLECTOR,
        PLATFORM_COLLECTOR,
        PROCESS_COLLECTOR,
        CollectorRegistry,
    )

    from clonequeue.metrics import FleetCollector

    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    registry.register(FleetCollector(services.fleet_state, ping=services.redis.ping))
    return registry
