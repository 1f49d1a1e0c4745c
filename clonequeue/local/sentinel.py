"""A Redis Sentinel group of our own: a master, replicas and sentinels, real processes.

For the test suite and benches (failover tests, WAIT's cost); every node is a
``redis-server`` child on a free port of ``host`` (``--sentinel`` for sentinels),
with fast failure detection (1 s) so a failover takes seconds, not a minute.
``prefix`` runs each node through a wrapper such as ``ip netns exec NAME``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clonequeue.local.ports import LOCALHOST, free_port
from clonequeue.local.processes import LocalServiceError, ManagedProcess
from clonequeue.local.redis import find_redis_server

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class Node:
    """One ``redis-server`` (data node or sentinel) that can be killed and started again."""

    name: str
    host: str
    port: int
    argv: list[str]
    directory: Path
    prefix: Sequence[str] = ()
    process: ManagedProcess | None = None

    def start(self) -> Self:
        self.process = ManagedProcess(
            [*self.prefix, *self.argv],
            log_path=self.directory / f"{self.name}.log",
            cwd=self.directory,
            name=self.name,
        ).start()
        self.process.wait_ready(self.answers, timeout_s=15)
        return self

    def client(self, timeout_s: float = 2.0) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def answers(self) -> bool:
        try:
            with self.client(0.3) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(timeout_s=5.0)

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running


@dataclass
class SentinelGroup:
    """``replicas`` + 1 data nodes and ``sentinels`` sentinels (quorum: a majority).

    Addresses come from ``hosts``: data node *i* on ``hosts[i % len]``, and so on,
    so a caller with several network namespaces can give each node its own host.
    """

    replicas: int = 1
    sentinels: int = 3
    hosts: Sequence[str] = (LOCALHOST,)
    prefixes: Sequence[Sequence[str]] = ((),)
    directory: Path | None = None
    data: list[Node] = field(default_factory=list)
    watchers: list[Node] = field(default_factory=list)
    _owns_directory: bool = False

    def start(self) -> Self:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="clonequeue-sentinel-"))
            self._owns_directory = True
        self.directory.mkdir(parents=True, exist_ok=True)
        executable = find_redis_server()
        try:
            master = self._data_node(executable, 0, None)
            master.start()
            for i in range(1, self.replicas + 1):
                self._data_node(executable, i, master).start()
            self._wait(lambda: self._replicas_online(master) == self.replicas, "replicas to sync")
            for i in range(self.sentinels):
                self._sentinel_node(executable, i, master).start()
            self._wait(self._sentinels_agree, "sentinels to find each other and the replicas")
        except BaseException:
            self.close()
            raise
        return self

    # --- what clients need ----------------------------------------------------------

    @property
    def url(self) -> str:
        """kombu's form: ``sentinel://h1:p1;sentinel://h2:p2;...`` (db 0)."""
        return ";".join(f"sentinel://{n.host}:{n.port}" for n in self.watchers)

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels say the master is (the first that answers)."""
        for sentinel in self.watchers:
            if not sentinel.is_running:
                continue
            try:
                with sentinel.client() as client:
                    host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                    return str(host), int(port)
            except (redis.RedisError, OSError, TypeError):
                continue
        raise LocalServiceError("no sentinel answers with the master's address")

    def master(self) -> Node:
        host, port = self.master_address()
        return next(n for n in self.data if (n.host, n.port) == (host, port))

    # --- faults -----------------------------------------------------------------------

    def failover(self, timeout_s: float = 30.0) -> Node:
        """``SENTINEL FAILOVER``: promote a replica; returns the new master once it serves."""
        old = self.master()
        with self.watchers[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        return self.wait_new_master(old, timeout_s)

    def wait_new_master(self, old: Node, timeout_s: float = 30.0) -> Node:
        """Wait until the sentinels name another master and it answers as one."""
        found: dict[str, Node] = {}

        def promoted() -> bool:
            try:
                node = self.master()
            except (LocalServiceError, StopIteration):
                return False
            if node is old or not node.is_running:
                return False
            try:
                with node.client() as client:
                    if client.info("replication").get("role") != "master":
                        return False
            except (redis.RedisError, OSError):
                return False
            found["node"] = node
            return True

        self._wait(promoted, "a new master", timeout_s)
        return found["node"]

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        for node in [*self.watchers, *self.data]:
            node.stop()
        if self._owns_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self._owns_directory = False

    def __enter__(self) -> Self:
        return self.start() if not self.data else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- helpers --------------------------------------------------------------------------

    def _place(self, index: int) -> tuple[str, Sequence[str]]:
        host = self.hosts[index % len(self.hosts)]
        prefix = self.prefixes[index % len(self.prefixes)]
        return host, prefix

    def _data_node(self, executable: str, index: int, master: Node | None) -> Node:
        host, prefix = self._place(index)
        port = free_port(LOCALHOST) if host == LOCALHOST else 6379
        assert self.directory is not None
        directory = self.directory / f"redis{index}"
        directory.mkdir(exist_ok=True)
        argv = [
            executable,
            "--port", str(port),
            "--bind", host,
            "--dir", str(directory),
            "--logfile", "",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--replica-announce-ip", host,
        ]  # fmt: skip
        if master is not None:
            argv += ["--replicaof", master.host, str(master.port)]
        node = Node(f"redis{index}", host, port, argv, directory, prefix)
        self.data.append(node)
        return node

    def _sentinel_node(self, executable: str, index: int, master: Node) -> Node:
        host, prefix = self._place(self.replicas + 1 + index)
        port = free_port(LOCALHOST) if host == LOCALHOST else 26379
        assert self.directory is not None
        directory = self.directory / f"sentinel{index}"
        directory.mkdir(exist_ok=True)
        quorum = self.sentinels // 2 + 1
        config = directory / "sentinel.conf"  # sentinels rewrite their file: one each
        config.write_text(
            f'port {port}\nbind {host}\ndir {directory}\ndaemonize no\nlogfile ""\n'
            f"sentinel announce-ip {host}\n"
            f"sentinel monitor {MASTER_NAME} {master.host} {master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n",
            encoding="utf-8",
        )
        argv = [executable, str(config), "--sentinel"]
        node = Node(f"sentinel{index}", host, port, argv, directory, prefix)
        self.watchers.append(node)
        return node

    def _replicas_online(self, master: Node) -> int:
        try:
            with master.client() as client:
                info: dict[str, Any] = client.info("replication")
        except (redis.RedisError, OSError):
            return 0
        states = [v.get("state") for k, v in info.items() if k.startswith("slave")]
        return states.count("online")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.watchers:
            try:
                with sentinel.client() as client:
                    replicas = client.sentinel_slaves(MASTER_NAME)
                    others = client.sentinel_sentinels(MASTER_NAME)
            except (redis.RedisError, OSError):
                return False
            if len(replicas) < self.replicas or len(others) < self.sentinels - 1:
                return False
        return True

    @staticmethod
    def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise LocalServiceError(f"gave up waiting {timeout_s:g} s for {what}")
            time.sleep(0.1)
