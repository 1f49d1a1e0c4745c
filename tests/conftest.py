"""Fixtures every test can use: the suite's own Redis server, and clean child environments.

The suite never touches a Redis it did not start. ``redis_server`` is an embedded
server (``clonequeue.local.EmbeddedRedis``) on a free port for the whole session,
so ``redis_client`` may FLUSHALL it before each test, even when a Redis answers
on 127.0.0.1:6379. Everything started here is stopped at the end of the session,
and by an ``atexit`` guard if the run is interrupted.

Child processes (the simulator, Celery workers) should get ``tmp_env`` and run
with ``cwd=tmp_path`` (so a developer's ``.env`` is not read either), each one a
``clonequeue.local.ManagedProcess``. Add their fixtures in the section at the end.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from clonequeue.local import (
    LOCALHOST,
    EmbeddedRedis,
    ManagedProcess,
    free_port,
    netns,
    port_answers,
    rabbitmq,
)
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System

RABBITMQ_PORT = 5672
pytest_plugins = ["tests.chaos.report"]


def pytest_configure(config: pytest.Config) -> None:
    """Treat SIGTERM (a cancelled CI job, ``timeout``) like Ctrl-C, so teardown and the
    ``atexit`` guard still stop our servers and children."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


# --- optional services ------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.rabbitmq`` tests when no broker answers (optional, CI too)."""
    needs_rabbitmq = [item for item in items if item.get_closest_marker("rabbitmq")]
    if needs_rabbitmq and not port_answers(LOCALHOST, RABBITMQ_PORT):
        skip = pytest.mark.skip(
            reason=f"RabbitMQ is optional and nothing answers on {LOCALHOST}:{RABBITMQ_PORT}"
        )
        for item in needs_rabbitmq:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[rabbitmq.Vhost]:
    """A vhost of the session's own on the machine's RabbitMQ, deleted at the end.

    Made with ``rabbitmqctl`` or the management API; skips, saying why, when neither works.
    """
    reason = rabbitmq.unavailable_reason()
    if reason is not None:
        pytest.skip(f"RabbitMQ answers but no vhost of our own can be made: {reason}")
    with rabbitmq.temporary_vhost() as vhost:
        yield vhost


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The suite's Redis: a free port, AOF on, data and ``redis.log`` under pytest's tmp dir.

    Tests may ``kill()`` and ``restart()`` it (same URL); ``redis_client`` restarts
    it if a test left it down.
    """
    server = EmbeddedRedis().start(directory=tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    """``redis://127.0.0.1:PORT/0`` of the suite's server."""
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client (bytes in, bytes out) on an empty database: the server is ours to flush."""
    if not redis_server.is_running:
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url, decode_responses=False)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


# --- child processes ----------------------------------------------------------------------


@pytest.fixture
def tmp_env(redis_url: str) -> dict[str, str]:
    """The environment for a child: ours minus every CLONEQUEUE_* name, on the suite's Redis.

    PYTHONUNBUFFERED makes Python children write each line to their log at once,
    so ``ManagedProcess.wait_ready(line=...)`` sees it.
    """
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CLONEQUEUE_")}
    env["CLONEQUEUE_REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- the API simulator and whole systems (end-to-end and chaos tests) ---------------------


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``clonequeue simulator`` as a real child process, shared by the e2e tests."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("simulator")
    process = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "simulator", "--port", str(port)],
        log_path=workdir / "simulator.log",
        cwd=workdir,
        name="simulator",
    )
    with process:
        process.wait_ready(line="simulator listening on", timeout_s=30)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def simulator(simulator_url: str) -> SimulatorAdmin:
    """The shared simulator, reset to its start values (and fast task durations)."""
    admin = SimulatorAdmin(simulator_url)
    admin.reset()
    admin.configure(
        clone_queue_s=0.3,
        clone_processing_s=1.0,
        audio_queue_s=0.3,
        audio_processing_s=1.0,
        jitter_ratio=0.3,
    )
    admin.set_balance(1_000_000)
    return admin


@pytest.fixture
def make_system(
    tmp_path: Path, redis_url: str, simulator: SimulatorAdmin, simulator_url: str
) -> Iterator[type[System]]:
    """Build a :class:`System` (settings as keyword arguments); stopped after the test."""
    systems: list[System] = []

    def build(**settings: str) -> System:
        system = System(tmp_path / f"system{len(systems)}", redis_url, simulator_url, **settings)
        systems.append(system)
        return system

    yield build  # type: ignore[misc]
    for system in systems:
        system.stop()


@pytest.fixture
def system(make_system: type[System]) -> System:
    return make_system()


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for ``make_system``: the suite's Redis as the broker, then RabbitMQ.

    Job records stay in Redis either way; the RabbitMQ case runs where one answers
    on 127.0.0.1:5672, in the session's own vhost (each system's queues are its own and
    deleted afterwards; the vhost goes at the end of the session).
    """
    if request.param == "redis":
        return {}
    vhost: rabbitmq.Vhost = request.getfixturevalue("rabbitmq_vhost")
    return {"broker_url": vhost.url}


# --- several hosts on one machine (network namespaces) -------------------------------------


@pytest.fixture
def network() -> Iterator[netns.Network]:
    """A private LAN of namespaces (``clonequeue.local.netns``), deleted afterwards.

    Skips, saying why, where the kernel or the user cannot create namespaces.
    """
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs network namespaces: {reason}")
    with netns.Network() as network:
        yield network
