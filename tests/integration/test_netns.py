"""The host harness itself: addresses, cuts, heals, the relay, and clean-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from clonequeue.local import netns
from clonequeue.local.hosts import REDIS_PORT, start_redis, start_redis_ha
from clonequeue.local.netns import Host, Network


def reach(host: Host, target: str, port: int, timeout_s: float = 1.0) -> str:
    """What a TCP connect from ``host`` to ``target:port`` does: ok, refused, timeout, ..."""
    code = (
        "import socket,sys\n"
        f"try: socket.create_connection(({target!r}, {port}), timeout={timeout_s}); print('ok')\n"
        "except TimeoutError: print('timeout')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except OSError as e: print(e.strerror)\n"
    )
    return host.run([sys.executable, "-c", code]).stdout.strip()


def test_hosts_reach_each_other_and_nothing_outside(network: Network, tmp_path: Path) -> None:
    server, client = network.add_host("server"), network.add_host("client")
    assert server.address != client.address
    assert server.address.startswith("10.")
    assert server.address.rsplit(".", 1)[0] == network.subnet
    start_redis(server, tmp_path / "redis")
    assert reach(client, server.address, REDIS_PORT) == "ok"
    # No route leaves the private network (no default route), and the machine's own
    # services are not on the host's loopback.
    routes = client.run(["ip", "route"]).stdout.strip().splitlines()
    assert routes == [
        f"{network.subnet}.0/24 dev eth0 proto kernel scope link src {client.address}"
    ]
    assert reach(client, "127.0.0.1", REDIS_PORT) == "refused"


def test_cut_between_two_hosts_leaves_others(network: Network, tmp_path: Path) -> None:
    store, api, worker = (network.add_host(n) for n in ("store", "api", "worker"))
    start_redis(store, tmp_path / "store")
    start_redis(api, tmp_path / "api")
    network.cut(worker, store)
    assert reach(worker, store.address, REDIS_PORT) == "timeout"  # silent, as a partition
    assert reach(worker, api.address, REDIS_PORT) == "ok"
    assert reach(api, store.address, REDIS_PORT) == "ok"
    network.heal(worker, store)
    assert reach(worker, store.address, REDIS_PORT) == "ok"


def test_cut_host_from_everyone_and_heal(network: Network, tmp_path: Path) -> None:
    store, worker = network.add_host("store"), network.add_host("worker")
    start_redis(store, tmp_path / "store")
    port = store.forward(REDIS_PORT)
    network.cut(store)
    assert reach(worker, store.address, REDIS_PORT) == "timeout"
    # The test process's relay enters the namespace itself: a cut does not blind it.
    assert redis.Redis(port=port, socket_timeout=5).ping()
    network.heal(store)
    assert reach(worker, store.address, REDIS_PORT) == "ok"


def test_close_deletes_namespaces_and_stops_processes(tmp_path: Path) -> None:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs network namespaces: {reason}")
    network = Network()
    host = network.add_host("store")
    process = start_redis(host, tmp_path / "store")
    names = set(network._created)
    network.close()
    assert not process.is_running
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not names & {line.split(" ")[0] for line in listing.splitlines()}


def test_netem_latency_or_a_reason(network: Network, tmp_path: Path) -> None:
    reason = netns.netem_unavailable_reason()
    if reason is not None:
        with pytest.raises(netns.NetemUnavailable):
            network.shape(network.add_host("a"), delay_ms=50)
        pytest.skip(f"no latency or loss on this kernel: {reason}")
    a, b = network.add_host("a"), network.add_host("b")
    start_redis(b, tmp_path / "b")
    network.shape(a, loss_pct=100)
    assert reach(a, b.address, REDIS_PORT) == "timeout"
    network.unshape(a)
    assert reach(a, b.address, REDIS_PORT) == "ok"


def test_sentinels_on_hosts_fail_over_a_cut_master(network: Network, tmp_path: Path) -> None:
    """A master and a replica on hosts of their own, 3 sentinels on 3 more: the master's
    link goes down, the sentinels promote the replica, and :meth:`RedisHA.follow` leads
    the test process to the new master; healed, the old master comes back as a replica."""
    a, b, client = network.add_host("a"), network.add_host("b"), network.add_host("client")
    watchers = [network.add_host(f"s{i}") for i in range(3)]
    group = start_redis_ha([a, b], watchers, tmp_path / "ha")
    assert group.url == ";".join(f"sentinel://{h.address}:26379" for h in watchers)
    assert group.master() is a
    followed = redis.Redis(port=group.follow(client), socket_timeout=5, decode_responses=True)
    followed.set("before", "1")
    assert followed.info("replication")["role"] == "master"
    network.cut(a)
    assert group.wait_new_master(a) is b
    followed.close()  # a new connection asks the sentinels again
    assert followed.get("before") == "1"  # replicated before the cut
    assert followed.info("replication")["role"] == "master"
    network.heal(a)
    old = redis.Redis(port=a.forward(REDIS_PORT), socket_timeout=5, decode_responses=True)
    group.wait(lambda: old.info("replication")["role"] == "slave", "the old master to rejoin")
    assert old.info("replication")["master_host"] == b.address
