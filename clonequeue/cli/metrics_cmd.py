"""``clonequeue exporter``: the fleet's state from Redis as Prometheus metrics."""

from __future__ import annotations

import signal
import threading

import typer

from clonequeue.cli import context


def exporter(
    port: int = typer.Option(9808, "--port", "-p", help="Serve /metrics on this port."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (0.0.0.0 to let Prometheus in)."
    ),
) -> None:
    """Serve fleet metrics (jobs by state, queue depths, in flight, parked, paused, spend).

    Workers serve their own counters with `clonequeue worker --metrics-port`; run one
    exporter per fleet for the rest. See README, "Metrics".
    """
    from prometheus_client import CollectorRegistry, start_http_server

    from clonequeue.metrics import FleetCollector
    from clonequeue.services import Services

    services = Services(context.settings())
    services.redis  # fail now, with one clear line, if Redis is unreachable  # noqa: B018
    registry = CollectorRegistry()
    registry.register(FleetCollector(services.fleet_state))
    server, thread = start_http_server(port, addr=host, registry=registry)
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
