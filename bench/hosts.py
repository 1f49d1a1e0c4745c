"""Scale-out: the makespan and in-flight workloads with 1 and with 2 worker hosts.

Run (as root: network namespaces): ``.venv/bin/python bench/hosts.py [--quick]``

Method
    Each run builds a private network of namespaces (clonequeue.local.netns): a
    Redis host, an API host (the simulator) and 1 or 2 worker hosts, one
    ``clonequeue worker`` each (the first with ``--beat``). The bench process reaches
    Redis and the simulator through relays. Every host shares this machine's cores,
    so a second host adds no CPU: what it adds here is what a worker process is
    bounded by besides CPU, its threads. Two workloads, each run with 1 and 2 hosts:

    * makespan (bench/makespan.py's): ``--jobs`` jobs of ``--duration-s`` tasks under
      an API limit of ``--rate``/s (the simulator answers 429 above it), our limit
      set to the same. Adding a host must not slow it (ratio <= 1.1) and the shared
      limiter must hold (no 429 beyond what one host sees).
    * in-flight (bench/inflight.py's steady window): ``--inflight`` tasks of 60 s at
      once, every API answer delayed ``--latency-s`` and ``--concurrency`` threads per
      worker, so a host's threads bound its polls (threads / latency per second).
      Capacity = the most polls in any 10 s of the run (the simulator's ledger), i.e.
      the tasks the fleet can keep on a 10 s cadence (the slow end of 5 -> 10 s).
      Adding a host must raise it (ratio >= 1.5).

    The baseline of each ratio is the 1-host run of the same invocation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

from clonequeue.local import netns
from clonequeue.local.hosts import (
    REDIS_PORT,
    SIMULATOR_PORT,
    start_clonequeue,
    start_redis,
    start_simulator,
)
from clonequeue.local.netns import Network
from clonequeue.local.stack import SIMULATOR_TOKEN, LocalStack, SimulatorAdmin

POLL_MAX_S = 10.0
GOAL_MAKESPAN_RATIO = 1.1
GOAL_INFLIGHT_RATIO = 1.5


@dataclass
class Fleet:
    stack: LocalStack
    services: Any
    admin: SimulatorAdmin
    workers: dict[str, int]  # name -> pid


@contextmanager
def fleet(
    hosts: int, *, sim_args: list[str], env: dict[str, str], concurrency: int
) -> Iterator[Fleet]:
    """Redis, the API and ``hosts`` worker hosts on a network of their own."""
    with (
        tempfile.TemporaryDirectory(prefix="cq-bench-hosts-") as tmp,
        Network() as network,
    ):
        path = Path(tmp)
        store, api = network.add_host("redis"), network.add_host("api")
        start_redis(store, path / "redis")
        start_simulator(api, path / "api", "--balance", "1000000000", *sim_args)
        stack = LocalStack(path / "stack", namespace="bench", extra_env={**h.BENCH_ENV, **env})
        stack.start_redis(f"redis://127.0.0.1:{store.forward(REDIS_PORT)}/0")
        stack.simulator_url = f"http://127.0.0.1:{api.forward(SIMULATOR_PORT)}"
        admin = stack.admin = SimulatorAdmin(stack.simulator_url)
        on_hosts = {
            **stack.env(),
            "CLONEQUEUE_REDIS_URL": f"redis://{store.address}:{REDIS_PORT}/0",
            "CLONEQUEUE_API_BASE_URL": f"http://{api.address}:{SIMULATOR_PORT}",
            "CLONEQUEUE_API_TOKEN": SIMULATOR_TOKEN,
        }
        started = []
        for i in range(1, hosts + 1):
            host = network.add_host(f"w{i}")
            command = ["worker", f"--hostname=w{i}@%h", "--concurrency", str(concurrency)]
            command += ["--beat"] if i == 1 else []
            started.append(
                start_clonequeue(host, path / host.name, command, env=on_hosts, name=host.name)
            )
        for process in started:
            process.wait_ready(line="ready.", timeout_s=120)
        workers = {p.name: p.pid for p in started if p.pid is not None}
        try:
            yield Fleet(stack, h.services_for(stack), admin, workers)
        finally:
            for process in started:
                h.keep_problems(process, f"hosts-{process.name}")
            stack.stop()


def makespan(hosts: int, args: argparse.Namespace) -> dict[str, Any]:
    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", str(args.duration_s)]
    sim_args += ["--rate-limit-per-s", str(args.rate)]
    env = {"CLONEQUEUE_API_RATE_LIMIT": f"{args.rate}/second"}
    with fleet(hosts, sim_args=sim_args, env=env, concurrency=args.create_concurrency) as f:
        h.banner(f"makespan: {args.jobs} jobs, {hosts} worker host(s), limit {args.rate}/s")
        started = time.time()
        h.submit(f.services, h.make_rows(args.jobs, prefix="mk"), "makespan")
        h.wait_finished(f.services, "makespan", timeout_s=args.jobs * 6 / args.rate + 300)
        seconds = time.time() - started
        summary = f.admin.summary()
        ledger = f.admin.ledger()
    calls = len(ledger["creates"]) + sum(len(t) for t in ledger["polls"].values())
    print(f"{hosts} host(s): makespan {seconds:.1f} s, {summary['http_429']} x 429, {calls} calls")
    return {"hosts": hosts, "makespan_s": seconds, "http_429": summary["http_429"], "calls": calls}


def inflight(hosts: int, args: argparse.Namespace) -> dict[str, Any]:
    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", "60", "--jitter-ratio", "0.25"]
    sim_args += ["--latency-s", str(args.latency_s)]
    with fleet(hosts, sim_args=sim_args, env={}, concurrency=args.concurrency) as f:
        h.banner(f"in-flight: {args.inflight} tasks of 60 s, {hosts} worker host(s)")
        with h.Meter(f.workers) as meter:
            stats = h.run_batch(
                f.stack,
                f.services,
                meter,
                h.make_rows(args.inflight, prefix=f"if{hosts}"),
                "inflight",
                timeout_s=300,
                workers=list(f.workers),
                others=(),
                allow_unfinished=True,
            )
            polls = sorted(t for times in f.admin.ledger()["polls"].values() for t in times)
    capacity = float(busiest(polls, POLL_MAX_S))
    print(
        f"{hosts} host(s): at most {capacity:.0f} polls in 10 s -> {capacity:.0f} tasks "
        f"on a 10 s cadence; lateness p99 {stats.lateness_p99_s:.1f} s, "
        f"lag p99 {stats.lag_p99_s:.1f} s, states {stats.states}"
    )
    return {
        "hosts": hosts,
        "polls_per_s": stats.polls_per_s,
        "capacity": capacity,
        "window_s": stats.window_s,
        "lateness_p99_s": stats.lateness_p99_s,
        "lag_p99_s": stats.lag_p99_s,
        "states": stats.states,
        "worker_cores": stats.worker_cores,
    }


def busiest(times: list[float], span_s: float) -> int:
    """The most of the sorted ``times`` inside any ``span_s`` window."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - span_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--rate", type=int, default=30, help="the API's limit, requests/s")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--create-concurrency", type=int, default=20)
    parser.add_argument("--inflight", type=int, default=600)
    parser.add_argument("--latency-s", type=float, default=0.25)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker host")
    parser.add_argument("--quick", action="store_true", help="150 jobs, 400 in flight")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.duration_s, args.inflight = 150, 5.0, 400
    reason = netns.unavailable_reason()
    if reason is not None:
        sys.exit(f"bench/hosts.py needs network namespaces: {reason}")

    spans = [makespan(n, args) for n in (1, 2)]
    flights = [inflight(n, args) for n in (1, 2)]
    one, two = spans
    i1, i2 = flights
    figures = [
        h.Figure(
            f"makespan, {args.jobs} jobs at {args.rate}/s, 2 worker hosts",
            two["makespan_s"],
            one["makespan_s"],
            "s",
            "1 worker host",
            f"<= {GOAL_MAKESPAN_RATIO}x",
            two["makespan_s"] <= GOAL_MAKESPAN_RATIO * one["makespan_s"],
            note=f"429s: {one['http_429']} with 1 host, {two['http_429']} with 2",
        ),
        h.Figure(
            "429 answers with 2 worker hosts (the shared limit)",
            two["http_429"],
            goal=f"<= {one['http_429']} (1 host's)",
            met=two["http_429"] <= one["http_429"],
        ),
        h.Figure(
            f"in-flight capacity, 2 worker hosts x {args.concurrency} threads",
            i2["capacity"],
            i1["capacity"],
            "tasks",
            "1 worker host",
            f">= {GOAL_INFLIGHT_RATIO}x",
            i2["capacity"] >= GOAL_INFLIGHT_RATIO * i1["capacity"],
            note=(
                f"{args.latency_s:g} s per API answer; poll lateness p99 "
                f"{i1['lateness_p99_s']:.1f} s -> {i2['lateness_p99_s']:.1f} s"
            ),
        ),
    ]
    h.print_table("scale-out across hosts (namespaces on one machine)", figures)
    h.write_result(
        "hosts",
        figures,
        environment=h.environment(),
        settings=vars(args),
        makespan=spans,
        inflight=flights,
    )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"took {time.monotonic() - started:.0f} s")
