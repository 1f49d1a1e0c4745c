"""Redis vs RabbitMQ as the broker: where held countdowns live, and what each costs.

Run: ``.venv/bin/python bench/broker_compare.py [--countdowns 10000] [--quick]``

Method
    The same workload on each broker: one ``clonequeue worker`` (threads, 8, poll
    queue only, no beat) and ``--countdowns`` N poll messages published through our
    own dispatcher (``CeleryDispatcher.poll(..., countdown=900)``), as workers publish
    them while jobs run. Nothing is due during the measurement.

    * Redis: the bench's own embedded Redis on a free port. The worker fetches every
      countdown message and holds it in memory until due (``CLONEQUEUE_ETA_TASK_LIMIT``
      raised to N so that it holds all of them; by default it stops fetching, *all*
      its queues, at 2,000). The visibility timeout is raised to 2 h so that none comes
      back meanwhile.
    * RabbitMQ: the machine's broker on 127.0.0.1:5672, in a vhost of the bench's own
      (deleted afterwards): quorum queues and native delayed delivery, so the messages
      wait in the ``celery_delayed_*`` levels on the broker.

    Also timed: from the first publish until all N are where they wait (the worker
    holds them; the delayed levels hold them). Held by the worker: ``celery inspect
    scheduled`` (ETA requests in its memory).
    Memory per held countdown: RSS growth of the worker, and of the broker process
    (redis-server; RabbitMQ's beam.smp, which the machine shares: read it as an
    estimate), from before publishing to when all N are held, divided by N. Redis's
    ``used_memory`` growth is shown too.

    In-flight capacity per worker: Redis, what a worker can hold without stopping
    (``ETA_TASK_LIMIT``, 2,000 by default) and what fits in the 300 MB RSS budget of
    bench/inflight.py; RabbitMQ, what fits per GB of broker memory (the worker holds
    none). The ratios compare the two brokers measured in this run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _harness as h
import psutil

COUNTDOWN_S = 900
CONCURRENCY = 8
RSS_BUDGET_MB = 300.0  # bench/inflight.py's goal for a worker
DEFAULT_ETA_LIMIT = 2000  # CLONEQUEUE_ETA_TASK_LIMIT's default
GB = 1024 * h.MB


@dataclass
class BrokerRun:
    broker: str
    countdowns: int
    publish_s: float
    held_s: float  # from the first publish until all N are where they wait
    held_by_worker: int
    worker_base_mb: float
    worker_kb_per: float
    broker_kb_per: float
    redis_used_kb_per: float | None = None


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)


def scheduled_count(app: Any) -> int:
    replies = app.control.inspect(timeout=10).scheduled() or {}
    return sum(len(requests) for requests in replies.values())


def beam_pid() -> int:
    """The RabbitMQ node's Erlang VM (beam.smp) on this machine."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (proc.info["name"] or "").startswith("beam") and "rabbit" in cmdline:
            return int(proc.pid)
    raise RuntimeError("no RabbitMQ beam.smp process found")


def settle_rss(pid: int, seconds: float = 3.0) -> int:
    """The RSS once it stopped moving for a moment (the broker digests what it got)."""
    last = h.tree_rss(pid)
    for _ in range(20):
        time.sleep(seconds / 3)
        now = h.tree_rss(pid)
        if abs(now - last) < h.MB:
            return now
        last = now
    return last


def run_one(broker: str, countdowns: int, vhost_url: str | None) -> BrokerRun:
    from clonequeue.dispatch.delayed import uses_native_delay
    from clonequeue.dispatch.dispatcher import CeleryDispatcher
    from clonequeue.store.jobs import Dispatch

    env = {
        "CLONEQUEUE_ETA_TASK_LIMIT": str(countdowns + 100),
        "CLONEQUEUE_VISIBILITY_TIMEOUT_S": "7200",
    }
    if vhost_url is not None:
        env["CLONEQUEUE_BROKER_URL"] = vhost_url
    h.banner(f"{broker}: {countdowns:,} countdowns of {COUNTDOWN_S} s")
    with h.workdir(f"broker-{broker}") as path, h.start_stack(path, env=env) as stack:
        worker = stack.start_worker("--queues", "poll", "--concurrency", str(CONCURRENCY))
        assert worker.pid is not None
        services = h.services_for(stack)
        app = services.app
        assert uses_native_delay(app) == (vhost_url is not None)
        redis_pid = stack.redis_server.pid if stack.redis_server else None
        broker_pid = beam_pid() if vhost_url else redis_pid
        assert broker_pid is not None
        client = services.redis
        time.sleep(3)  # the worker's start-up allocations settle
        worker_before = settle_rss(worker.pid)
        broker_before = settle_rss(broker_pid)
        used_before = int(client.info("memory")["used_memory"]) if vhost_url is None else 0
        dispatcher = CeleryDispatcher(app)
        started = time.perf_counter()
        for i in range(countdowns):
            step = Dispatch(f"bench-{i:06d}", "c", 1, remote_id=f"clone_{i:06d}")
            dispatcher.poll(step, countdown=COUNTDOWN_S)
        publish_s = time.perf_counter() - started
        if vhost_url is None:
            wait_until(lambda: scheduled_count(app) >= countdowns, 900, "worker holds them all")
        else:
            from kombu.transport.native_delayed_delivery import level_name

            from clonequeue.dispatch.broker import queue_depths

            levels = [level_name(level) for level in range(28)]
            wait_until(
                lambda: sum(queue_depths(app, levels).values()) >= countdowns,
                900,
                "the delayed levels hold them all",
            )
        held_s = time.perf_counter() - started
        time.sleep(2)
        held = scheduled_count(app)
        worker_after = settle_rss(worker.pid)
        broker_after = settle_rss(broker_pid)
        used_after = int(client.info("memory")["used_memory"]) if vhost_url is None else 0
        run = BrokerRun(
            broker=broker,
            countdowns=countdowns,
            publish_s=publish_s,
            held_s=held_s,
            held_by_worker=held,
            worker_base_mb=worker_before / h.MB,
            worker_kb_per=max(worker_after - worker_before, 0) / countdowns / 1024,
            broker_kb_per=max(broker_after - broker_before, 0) / countdowns / 1024,
            redis_used_kb_per=(
                (used_after - used_before) / countdowns / 1024 if vhost_url is None else None
            ),
        )
        print(run)
        return run


def capacity_per_worker(run: BrokerRun) -> float:
    """Countdowns one worker can hold within the RSS budget (Redis), also ETA-bound."""
    room_kb = (RSS_BUDGET_MB - run.worker_base_mb) * 1024
    return room_kb / run.worker_kb_per if run.worker_kb_per > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--countdowns", type=int, default=10000)
    parser.add_argument("--name", default="broker_compare")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 countdowns")
    args = parser.parse_args()
    if args.quick:
        args.countdowns = 2000

    from clonequeue.local import rabbitmq

    redis_run = run_one("redis", args.countdowns, None)
    reason = rabbitmq.unavailable_reason()
    if reason is not None:
        print(f"RabbitMQ skipped: {reason}")
        return
    with rabbitmq.temporary_vhost("clonequeue-bench") as vhost:
        rabbit_run = run_one("rabbitmq", args.countdowns, vhost.url)

    redis_total_kb = redis_run.worker_kb_per + redis_run.broker_kb_per
    rabbit_total_kb = rabbit_run.worker_kb_per + rabbit_run.broker_kb_per
    redis_capacity = min(capacity_per_worker(redis_run), float(DEFAULT_ETA_LIMIT))
    redis_capacity_budget = capacity_per_worker(redis_run)
    rabbit_per_gb = GB / 1024 / rabbit_run.broker_kb_per if rabbit_run.broker_kb_per else 0.0
    redis_per_gb = GB / 1024 / redis_total_kb if redis_total_kb else 0.0
    figures = [
        h.Figure(
            "countdowns held in the worker",
            rabbit_run.held_by_worker,
            redis_run.held_by_worker,
            unit="",
            baseline_name="Redis",
            note=f"of {args.countdowns:,}; RabbitMQ's wait in the delayed levels",
        ),
        h.Figure(
            "worker RSS per held countdown",
            rabbit_run.worker_kb_per,
            redis_run.worker_kb_per,
            unit="KB",
            baseline_name="Redis",
        ),
        h.Figure(
            "broker RSS per held countdown",
            rabbit_run.broker_kb_per,
            redis_run.broker_kb_per,
            unit="KB",
            baseline_name="Redis",
            note=(
                "RabbitMQ: beam.smp RSS growth (a shared node: an estimate); Redis: "
                f"redis-server RSS (used_memory: {h.fmt(redis_run.redis_used_kb_per)} KB)"
            ),
        ),
        h.Figure(
            "worker + broker memory per countdown",
            rabbit_total_kb,
            redis_total_kb,
            unit="KB",
            baseline_name="Redis",
        ),
        h.Figure(
            "countdowns per GB of memory",
            rabbit_per_gb,
            redis_per_gb,
            unit="",
            baseline_name="Redis",
            note="RabbitMQ: broker memory only (workers hold none)",
        ),
        h.Figure(
            "held countdowns one worker takes (Redis)",
            redis_capacity,
            unit="",
            note=(
                f"min(ETA_TASK_LIMIT {DEFAULT_ETA_LIMIT:,}, {RSS_BUDGET_MB:.0f} MB RSS budget: "
                f"{h.fmt(redis_capacity_budget)}); past the limit the worker stops fetching. "
                "RabbitMQ: not bound by the worker"
            ),
        ),
        h.Figure(
            "publish time per countdown",
            rabbit_run.publish_s / args.countdowns * 1000,
            redis_run.publish_s / args.countdowns * 1000,
            unit="ms",
            baseline_name="Redis",
            note="the publisher's side (no publisher confirms)",
        ),
        h.Figure(
            f"time until all {args.countdowns:,} are held",
            rabbit_run.held_s,
            redis_run.held_s,
            unit="s",
            baseline_name="Redis",
            note=(
                "RabbitMQ: until the delayed quorum queue has them all (it writes each to "
                "its log); Redis: until the worker holds them all"
            ),
        ),
    ]
    h.print_table("broker compare: RabbitMQ (value) against Redis (baseline)", figures)
    h.write_result(
        args.name,
        figures,
        runs=[vars(redis_run), vars(rabbit_run)],
        countdown_s=COUNTDOWN_S,
        environment=h.environment(),
    )


if __name__ == "__main__":
    main()
