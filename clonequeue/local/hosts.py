"""Our services on the hosts of a :class:`~clonequeue.local.netns.Network`.

Each starter runs the real program inside a host (``ip netns exec``), listening on
the host's loopback and its ``eth0`` address, and waits until its log says it is
ready (the test process cannot probe an address inside a namespace; it reaches a
service through :meth:`Host.forward`). Processes are the host's: stopped by
``Network.close()``, or by the caller first, or SIGKILLed by :func:`kill_host`.

:func:`start_redis_ha` puts a Redis master, its replicas and sentinels on hosts of
their own (real ``redis-server`` and ``redis-server --sentinel`` processes); the
fleet gets :attr:`RedisHA.url`, the test process :meth:`RedisHA.follow`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clonequeue.local.netns import Host
from clonequeue.local.processes import LocalServiceError, ManagedProcess
from clonequeue.local.redis import find_redis_server
from clonequeue.local.sentinel import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, MASTER_NAME

REDIS_PORT = 6379
SENTINEL_PORT = 26379
SIMULATOR_PORT = 8080


def start_redis(
    host: Host,
    directory: Path,
    *,
    port: int = REDIS_PORT,
    appendonly: bool = True,
    replicaof: Host | None = None,
) -> ManagedProcess:
    """``redis-server`` on ``host`` (AOF as in :class:`EmbeddedRedis`); ready on return.

    ``replicaof``: a replica of the Redis on that host (ready once it has synced).
    """
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
        "--replica-announce-ip", host.address,
    ]  # fmt: skip
    ready = "Ready to accept connections"
    if replicaof is not None:
        argv += ["--replicaof", replicaof.address, str(port)]
        ready = "MASTER <-> REPLICA sync: Finished with success"
    process = host.process(argv, log_path=directory / "redis.log", cwd=directory, name="redis")
    return process.wait_ready(line=ready, timeout_s=20)


def start_sentinel(
    host: Host, directory: Path, master: Host, *, quorum: int, port: int = SENTINEL_PORT
) -> ManagedProcess:
    """``redis-server --sentinel`` on ``host`` watching the master on ``master`` (as
    :data:`~clonequeue.local.sentinel.MASTER_NAME`, 1 s to notice it is down)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"  # a sentinel rewrites its file: one each
    # The host's address first: a sentinel's own connections leave from its first bind
    # address, and from 127.0.0.1 they would reach no other host.
    config.write_text(
        f"port {port}\nbind {host.address} 127.0.0.1\nprotected-mode no\n"
        f'dir {directory}\ndaemonize no\nlogfile ""\n'
        f"sentinel announce-ip {host.address}\n"
        f"sentinel monitor {MASTER_NAME} {master.address} {REDIS_PORT} {quorum}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n",
        encoding="utf-8",
    )
    argv = [find_redis_server(), str(config), "--sentinel"]
    process = host.process(
        argv, log_path=directory / "sentinel.log", cwd=directory, name="sentinel"
    )
    return process.wait_ready(line="+monitor master", timeout_s=20)


@dataclass
class RedisHA:
    """A Redis master, its replicas and sentinels, each on a host of its own (or shared).

    The test process asks the sentinels through forwards (:meth:`Host.forward`);
    :meth:`follow` gives it a port that always leads to the current master.
    """

    data: list[Host]
    sentinels: list[Host]
    _ports: dict[str, int] = field(default_factory=dict)  # sentinel host name -> forward

    @property
    def url(self) -> str:
        """What a fleet on these hosts sets as ``CLONEQUEUE_REDIS_URL`` (kombu's form)."""
        return ";".join(f"sentinel://{h.address}:{SENTINEL_PORT}" for h in self.sentinels)

    def _sentinel(self, host: Host) -> redis.Redis:
        if host.name not in self._ports:
            self._ports[host.name] = host.forward(SENTINEL_PORT)
        return redis.Redis(
            port=self._ports[host.name],
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels say the master is (the first one that answers)."""
        for host in self.sentinels:
            try:
                with self._sentinel(host) as client:
                    address, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                    return str(address), int(port)
            except (redis.RedisError, OSError, TypeError):
                continue
        raise LocalServiceError("no sentinel answers with the master's address")

    def master(self) -> Host:
        address, _ = self.master_address()
        for host in self.data:
            if host.address == address:
                return host
        raise LocalServiceError(f"the sentinels name {address}, none of our hosts")

    def agree(self) -> bool:
        """Every sentinel names the same master and knows every replica and sentinel."""
        masters = set()
        for host in self.sentinels:
            try:
                with self._sentinel(host) as client:
                    replicas = client.sentinel_slaves(MASTER_NAME)
                    others = client.sentinel_sentinels(MASTER_NAME)
                    masters.add(client.sentinel_get_master_addr_by_name(MASTER_NAME)[0])
            except (redis.RedisError, OSError, TypeError):
                return False
            online = [r for r in replicas if "s_down" not in r.get("flags", "")]
            if len(online) < len(self.data) - 1 or len(others) < len(self.sentinels) - 1:
                return False
        return len(masters) == 1

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        """Poll ``condition`` (a sentinel that does not answer yet counts as False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if condition():
                    return
            except LocalServiceError:
                pass
            if time.monotonic() > deadline:
                raise LocalServiceError(f"gave up waiting {timeout_s:g} s for {what}")
            time.sleep(0.2)

    def wait_new_master(self, old: Host, timeout_s: float = 30.0) -> Host:
        """Wait until the sentinels name a master other than ``old``."""
        self.wait(lambda: self.master() is not old, f"a master other than {old.name}", timeout_s)
        return self.master()

    def follow(self, via: Host) -> int:
        """A port on 127.0.0.1 that relays, from inside ``via``, to the master of the
        moment: each new connection asks the sentinels again."""
        return via.forward(REDIS_PORT, resolve=self.master_address)


def start_redis_ha(data: Sequence[Host], sentinels: Sequence[Host], directory: Path) -> RedisHA:
    """Redis on every host of ``data`` (the first the master, the rest its replicas)
    and a sentinel on every host of ``sentinels`` (quorum: a majority); ready on return."""
    master, *replicas = data
    start_redis(master, directory / master.name)
    for host in replicas:
        start_redis(host, directory / host.name, replicaof=master)
    quorum = len(sentinels) // 2 + 1
    for host in sentinels:
        start_sentinel(host, directory / f"sentinel-{host.name}", master, quorum=quorum)
    group = RedisHA(list(data), list(sentinels))
    group.wait(group.agree, "the sentinels to find each other and the replicas")
    return group


def kill_host(host: Host) -> None:
    """SIGKILL every process started on ``host`` (each with its children), as a crash."""
    for process in host.processes:
        process.kill()


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
