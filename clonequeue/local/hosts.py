"""Our services on the hosts of a :class:`~clonequeue.local.netns.Network`.

Each starter runs the real program inside a host (``ip netns exec``), listening on
the host's loopback and its ``eth0`` address, and waits until its log says it is
ready (the test process cannot probe an address inside a namespace; it reaches a
service through :meth:`Host.forward`). Processes are the host's: stopped by
``Network.close()``, or by the caller first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from clonequeue.local.netns import Host
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.redis import find_redis_server

REDIS_PORT = 6379
SIMULATOR_PORT = 8080


def start_redis(
    host: Host, directory: Path, *, port: int = REDIS_PORT, appendonly: bool = True
) -> ManagedProcess:
    """``redis-server`` on ``host`` (AOF as in :class:`EmbeddedRedis`); ready on return."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1", host.address,
        "--protected-mode", "no",  # only our own namespaces can reach it
        "--dir", str(directory),
        "--logfile", "",
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--daemonize", "no",
    ]  # fmt: skip
    process = host.process(argv, log_path=directory / "redis.log", cwd=directory, name="redis")
    return process.wait_ready(line="Ready to accept connections", timeout_s=20)


def start_simulator(
    host: Host,
    workdir: Path,
    *args: str,
    port: int = SIMULATOR_PORT,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """``clonequeue simulator`` on ``host`` (all its addresses); ready on return."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "clonequeue", "simulator", "--host", "0.0.0.0",
            "--port", str(port), *args]  # fmt: skip
    process = host.process(
        argv, log_path=workdir / "simulator.log", cwd=workdir, env=env, name="simulator"
    )
    return process.wait_ready(line="simulator listening on", timeout_s=30)


def start_clonequeue(
    host: Host,
    workdir: Path,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    name: str,
    ready_line: str | None = None,
) -> ManagedProcess:
    """``clonequeue <command...>`` on ``host`` (a worker, beat, a producer)."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = host.process(
        [sys.executable, "-m", "clonequeue", *command],
        log_path=workdir / f"{name}.log",
        cwd=workdir,
        env=env,
        name=name,
    )
    if ready_line is not None:
        process.wait_ready(line=ready_line, timeout_s=60)
    return process
