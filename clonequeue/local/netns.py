"""Several hosts on one machine: network namespaces joined by veth pairs to a bridge.

A :class:`Network` is a private LAN that exists only inside namespaces it creates:
a "switch" namespace holding a bridge, and one namespace per :class:`Host` with an
``eth0`` (one end of a veth pair; the other end is a port of the bridge) carrying
an address of a random ``10.x.y.0/24``. Nothing is added to the machine's own
namespace, so no route leads there and a test can reach nothing else through it;
the test process talks to services on the hosts through :meth:`Host.forward`
(a relay on 127.0.0.1, see :mod:`clonequeue.local.relay`).

Faults: :meth:`Network.cut` takes a host's link down (or, given two hosts, drops
every packet between just those two, both ways), :meth:`Network.heal` undoes it,
:meth:`Network.shape` adds ``tc netem`` latency and loss where the kernel has it.
Every name carries this process's pid and a random suffix (others build their own
networks at the same time); :meth:`Network.close` (also at interpreter exit)
stops the processes started on the hosts and deletes every namespace, which
deletes the veths and the bridge with them.

Needs root (CAP_NET_ADMIN) and iproute2; :func:`unavailable_reason` says why not.
In tests, the ``network`` fixture (tests/conftest.py) skips with that reason. E.g.::

    store, worker = network.add_host("redis"), network.add_host("w1")
    start_redis(store, tmp_path / "redis")            # clonequeue.local.hosts
    port = store.forward(6379)                        # the test reaches it on 127.0.0.1
    worker.process([...], log_path=..., env={"CLONEQUEUE_REDIS_URL":
                   f"redis://{store.address}:6379/0"})  # or host.command(argv) as a prefix
    network.cut(worker, store); ...; network.heal(worker, store)
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from clonequeue.local.live import LiveSet
from clonequeue.local.processes import LocalServiceError, ManagedProcess
from clonequeue.local.relay import Forward

PREFIX = "cqn"
_NETNS_DIR = Path("/run/netns")
_DEVICE = "eth0"
_PASS_CLASS, _DROP_CLASS = "1:1", "1:2"


class NetnsUnavailable(LocalServiceError):
    """This machine cannot give us namespaces, veths or the ``tc`` feature asked for."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsUnavailable(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result


@functools.cache
def unavailable_reason() -> str | None:
    """None when namespaces, veth pairs and a bridge work here, else why not (one line).

    Probed once per process by building (and deleting) a two-namespace network; it
    also deletes namespaces that runs no longer alive left behind (:func:`remove_stale`).
    """
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); run the tests as root"
    try:
        remove_stale()
        with Network(prefix=f"{PREFIX}probe") as probe:
            probe.add_host("a")
    except (NetnsUnavailable, OSError, subprocess.SubprocessError) as exc:
        return f"the kernel refuses network namespaces or veth pairs: {exc}"
    return None


@functools.cache
def netem_unavailable_reason() -> str | None:
    """None when ``tc qdisc ... netem`` works, else why not (many kernels lack sch_netem)."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if shutil.which("tc") is None:
        return "iproute2's `tc` is not installed"
    with Network(prefix=f"{PREFIX}probe") as probe:
        host = probe.add_host("a")
        result = host.run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        if result.returncode != 0:
            return f"the kernel has no tc netem (sch_netem): {result.stderr.strip()}"
    return None


class Host:
    """One machine of a :class:`Network`: a namespace with ``eth0`` at :attr:`address`."""

    def __init__(self, network: Network, name: str, netns: str, address: str, port: str) -> None:
        self.network, self.name, self.netns, self.address = network, name, netns, address
        self.port = port  # its cable's end on the bridge, in the switch namespace
        self.processes: list[ManagedProcess] = []
        self._shaped = False
        self._forwards: list[Forward] = []

    @property
    def netns_path(self) -> Path:
        return _NETNS_DIR / self.netns

    def command(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """``argv`` run inside this host (``ip netns exec`` execs it: same pid, signals)."""
        return ["ip", "netns", "exec", self.netns, *(os.fspath(a) for a in argv)]

    def run(
        self, argv: Sequence[str], *, timeout_s: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside this host and return what it did (never raises on rc)."""
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout_s)

    def process(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> ManagedProcess:
        """A started :class:`ManagedProcess` living on this host; stopped by ``close()``."""
        process = ManagedProcess(
            self.command(argv), log_path=log_path, env=env, cwd=cwd, name=name or self.name
        )
        process.start()
        self.processes.append(process)
        return process

    def forward(
        self,
        port: int,
        target: str = "127.0.0.1",
        *,
        resolve: Callable[[], tuple[str, int]] | None = None,
    ) -> int:
        """A port on 127.0.0.1 *here* that relays to ``target:port`` inside this host.

        This is how the test process (in the machine's namespace) reaches a service
        on a host without any route out of the namespaces; cutting links does not
        cut it (it enters the namespace directly, to its loopback by default).
        ``resolve`` names the target per connection instead (see :class:`Forward`).
        """
        forward = Forward(self.netns_path, target, port, resolve=resolve).start()
        self._forwards.append(forward)
        return forward.port

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", self.netns, *args], check=check)

    def tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["tc", "-n", self.netns, *args], check=check)

    def ensure_shaping(self) -> None:
        """An htb root on eth0: class 1:1 passes (default), 1:2 drops (a 0-packet fifo)."""
        if self._shaped:
            return
        self.tc("qdisc", "add", "dev", _DEVICE, "root", "handle", "1:", "htb", "default", "1")
        for classid in (_PASS_CLASS, _DROP_CLASS):
            self.tc("class", "add", "dev", _DEVICE, "parent", "1:", "classid", classid,
                    "htb", "rate", "10gbit", "quantum", "60000")  # fmt: skip
        self.tc("qdisc", "add", "dev", _DEVICE, "parent", _DROP_CLASS, "handle", "2:",
                "pfifo", "limit", "0")  # fmt: skip
        self._shaped = True

    def stop_processes(self) -> None:
        for process in self.processes:
            process.terminate(timeout_s=5)
        self.processes.clear()
        for forward in self._forwards:
            forward.close()
        self._forwards.clear()

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address} netns={self.netns}>"


class Network:
    """A private LAN of hosts (namespaces) on a bridge; a context manager."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.tag = f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}"
        rng = random.Random(secrets.randbits(32))
        self.subnet = f"10.{rng.randint(64, 250)}.{rng.randint(0, 255)}"
        self.hosts: dict[str, Host] = {}
        self._switch: str | None = None
        self._cuts: dict[tuple[str, str], int] = {}
        self._next_pref = 100
        self._closed = False
        self._created: list[str] = []
        _open.add(self)

    # --- building ------------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        """A new host ``name`` (letters, digits, dashes) with the next address."""
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists already")
        if len(self.hosts) >= 250:
            raise ValueError("a network holds at most 250 hosts")
        switch = self._ensure_switch()
        index = len(self.hosts) + 1
        netns = self._add_netns(name)
        port = f"p{index}"
        address = f"{self.subnet}.{index}"
        _run(["ip", "-n", netns, "link", "add", _DEVICE, "type", "veth",
              "peer", "name", port, "netns", switch])  # fmt: skip
        _run(["ip", "-n", switch, "link", "set", port, "master", "br0", "up"])
        _run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", _DEVICE])
        _run(["ip", "-n", netns, "link", "set", _DEVICE, "up"])
        host = Host(self, name, netns, address, port)
        self.hosts[name] = host
        return host

    def _ensure_switch(self) -> str:
        if self._switch is None:
            self._switch = self._add_netns("switch")
            _run(["ip", "-n", self._switch, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self._switch, "link", "set", "br0", "up"])
        return self._switch

    def _add_netns(self, name: str) -> str:
        netns = f"{self.tag}-{name}"
        _run(["ip", "netns", "add", netns])
        self._created.append(netns)
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])
        return netns

    # --- faults --------------------------------------------------------------------

    def cut(self, a: Host, b: Host | None = None) -> None:
        """Cut ``a`` off: its cable's switch port down (from everyone), or only from ``b``.

        A cut between two hosts (both ways) drops their packets silently (an htb class whose
        fifo holds 0 packets), as a partition does: connections hang, then time out.
        """
        if b is None:
            self._switch_port(a, "down")
            return
        for src, dst in ((a, b), (b, a)):
            key = (src.name, dst.name)
            if key in self._cuts:
                continue
            src.ensure_shaping()
            pref = self._next_pref
            self._next_pref += 1
            src.tc("filter", "add", "dev", _DEVICE, "parent", "1:", "protocol", "ip",
                   "pref", str(pref), "u32", "match", "ip", "dst", f"{dst.address}/32",
                   "flowid", _DROP_CLASS)  # fmt: skip
            self._cuts[key] = pref

    def heal(self, a: Host, b: Host | None = None) -> None:
        """Undo :meth:`cut` (the same arguments).

        A host cut from everyone leaves the others' neighbour (ARP) entries for it
        unresolved; they are dropped, so the first packet after the heal resolves at
        once instead of waiting for the kernel's next ARP retry (up to 1 s: a connect
        within a second of the heal timed out in 1 of 6 tries, and once in CI).
        """
        if b is None:
            self._switch_port(a, "up")
            for other in self.hosts.values():
                if other is not a:
                    _run(["ip", "-n", other.netns, "neigh", "flush", "to", a.address])
            return
        for src, dst in ((a, b), (b, a)):
            pref = self._cuts.pop((src.name, dst.name), None)
            if pref is not None:
                src.tc("filter", "del", "dev", _DEVICE, "parent", "1:", "pref", str(pref))

    def _switch_port(self, host: Host, state: str) -> None:
        """The bridge's end of ``host``'s cable: down, the host keeps its address and
        routes, and its packets vanish silently (a pulled cable, a dead switch port)."""
        assert self._switch is not None
        _run(["ip", "-n", self._switch, "link", "set", host.port, state])

    def shape(
        self, host: Host, *, delay_ms: float = 0, jitter_ms: float = 0, loss_pct: float = 0
    ) -> None:
        """``tc netem`` on everything ``host`` sends (``loss_pct=100``: a silent cut).

        Raises :class:`NetemUnavailable` where the kernel has no sch_netem; call
        :func:`netem_unavailable_reason` first to skip with the reason.
        """
        reason = netem_unavailable_reason()
        if reason is not None:
            raise NetemUnavailable(reason)
        host.ensure_shaping()
        spec = ["delay", f"{delay_ms}ms", f"{jitter_ms}ms", "loss", f"{loss_pct}%"]
        host.tc("qdisc", "replace", "dev", _DEVICE, "parent", _PASS_CLASS, "handle", "10:",
                "netem", *spec)  # fmt: skip

    def unshape(self, host: Host) -> None:
        """Remove what :meth:`shape` added."""
        if host._shaped:
            host.tc("qdisc", "del", "dev", _DEVICE, "parent", _PASS_CLASS, "handle", "10:",
                    check=False)  # fmt: skip

    # --- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Stop every process started on the hosts, then delete every namespace."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts.values():
            host.stop_processes()
        for netns in reversed(self._created):
            _run(["ip", "netns", "del", netns], check=False)
        _open.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Network {self.tag} {self.subnet}.0/24 hosts={list(self.hosts)}>"


class NetemUnavailable(NetnsUnavailable):
    """The kernel has no ``sch_netem``: no latency or random loss here."""


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces that a run which no longer exists left behind (its pid is gone).

    Only names of this module's form (``<prefix>-<pid>-<hex>-<host>``) are touched.
    """
    removed = []
    listing = _run(["ip", "netns", "list"], check=False).stdout.split("\n")
    for line in listing:
        name = line.split(" ", 1)[0]
        parts = name.split("-")
        if len(parts) < 4 or not parts[0].startswith(prefix) or not parts[1].isdigit():
            continue
        if not Path(f"/proc/{parts[1]}").exists():
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


_open: LiveSet[Network] = LiveSet()


def _close_all() -> None:
    for network in _open.snapshot():
        network.close()


atexit.register(_close_all)
