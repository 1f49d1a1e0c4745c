"""Threads vs gevent pool for our poll workload, and what Celery's task events cost.

Run: ``.venv/bin/python bench/worker_pool.py [--jobs 1500] [--quick]``
Needs gevent in the venv for the gevent rows (``.venv/bin/pip install gevent``; it
is not a clonequeue dependency); without it they are skipped.

Method
    Embedded Redis and the simulator (clones 0 + 40 s, jitter 0.25). One worker
    process at a time, the same in-flight load for each pool: ``--jobs`` jobs (no
    production audio) submitted at once; the steady window runs from the last
    create to the first completion (see bench/inflight.py). Per pool:

    * ``clonequeue worker --pool=threads -c 50`` (production);
    * ``clonequeue worker --pool=gevent -c 200``, started through
      ``_gevent_worker.py`` (monkey-patched before anything is imported).

    ``clonequeue beat`` runs beside them (``-B`` does not work with gevent), so the
    watchdog re-drives a lost poll chain in either pool.

    Figures: worker CPU per poll (psutil, process tree, over the window), polls/s
    in the window, the ceiling one process could reach (1 core / CPU per poll:
    the GIL makes one process one core), and detection lag p99.

    Task events: a bare Celery app (threads, -c 50, our acks/prefetch settings)
    drains pre-published no-op tasks with events on and off, alternately
    ``--rounds`` times; tasks/s and CPU per task.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from dataclasses import asdict
from typing import Any

import _harness as h

from clonequeue.local.processes import ManagedProcess

GEVENT_WORKER = h.ROOT / "bench" / "_gevent_worker.py"


def start_gevent_worker(stack: Any, concurrency: int) -> ManagedProcess:
    process = ManagedProcess(
        [
            sys.executable,
            str(GEVENT_WORKER),
            "worker",
            "--hostname=gevent@%h",
            "--concurrency",
            str(concurrency),
            "--pool=gevent",
        ],
        log_path=stack.workdir / "gevent.log",
        env=stack.env(),
        name="gevent",
    )
    process.start()
    stack.workers.append(process)
    process.wait_ready(line="ready.", timeout_s=60)
    return process


def args_timeout(jobs: int) -> float:
    """Long enough for the watchdog (60 s grace) to re-drive a lost poll chain."""
    return 240 + jobs / 20


def run_pool(stack: Any, services: Any, pool: str, jobs: int, concurrency: int) -> dict[str, Any]:
    h.banner(f"{pool} pool, -c {concurrency}, {jobs} jobs in flight")
    if pool == "threads":
        stack.start_worker("--concurrency", str(concurrency), name="threads")
    else:
        start_gevent_worker(stack, concurrency)
    names = list(h.worker_pids(stack))
    with h.Meter({**h.worker_pids(stack), **h.system_pids(stack)}) as meter:
        stats = h.run_batch(
            stack,
            services,
            meter,
            h.make_rows(jobs, prefix=pool),
            f"pool-{pool}",
            timeout_s=args_timeout(jobs),
            workers=names,
            allow_unfinished=True,
        )
    problems = sum(h.keep_problems(w, f"worker_pool-{pool}-problems") for w in stack.workers)
    stack.stop_workers()
    row = {k: v for k, v in asdict(stats).items() if k not in ("lags", "lateness_points")}
    row.update(pool=pool, concurrency=concurrency, log_problem_lines=problems)
    print(
        f"{pool}: {stats.worker_cpu_ms_per_poll:.2f} ms CPU/poll, {stats.polls_per_s:.0f} polls/s, "
        f"lateness p99 {stats.lateness_p99_s:.2f} s, lag p99 {stats.lag_p99_s:.1f} s, "
        f"RSS {sum(stats.peak_rss_mb.values()):.0f} MB, states {stats.states}, "
        f"{problems} warning/error log lines",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--duration-s", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=2, help="events on/off alternations")
    parser.add_argument("--noop-tasks", type=int, default=4000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.duration_s, args.rounds, args.noop_tasks = 300, 20.0, 1, 1000
    has_gevent = importlib.util.find_spec("gevent") is not None
    if not has_gevent:
        print("gevent is not installed: the gevent rows are skipped (.venv/bin/pip install gevent)")

    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", str(args.duration_s)]
    sim_args += ["--jitter-ratio", "0.25"]
    events: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    pools: list[dict[str, Any]] = []
    with h.workdir("pool") as path, h.start_stack(path, sim_args=sim_args) as stack:
        h.banner("bare no-op tasks, events on vs off")
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                result = h.bare_noop(
                    stack.redis_url, path, tasks=args.noop_tasks, events=mode == "on"
                )
                events[mode].append(result)
                print(
                    f"events {mode}: {result['tasks_per_s']:.0f} tasks/s, "
                    f"{result['cpu_ms_per_task']:.2f} ms CPU/task",
                    flush=True,
                )
        services = h.services_for(stack)
        # The watchdog runs beside the workers (celery -B does not work with gevent),
        # so a lost poll chain is re-driven in either pool; its CPU is not counted.
        beat = ManagedProcess(
            [sys.executable, "-m", "clonequeue", "beat"],
            log_path=path / "beat.log",
            env=stack.env(),
            name="beat",
        ).start()
        pools.append(run_pool(stack, services, "threads", args.jobs, 50))
        if has_gevent:
            pools.append(run_pool(stack, services, "gevent", args.jobs, 200))
        beat.terminate()

    threads = pools[0]
    figures = []
    for row in pools[1:]:
        figures += [
            h.Figure(
                f"{row['pool']} -c {row['concurrency']}: worker CPU per poll",
                row["worker_cpu_ms_per_poll"],
                threads["worker_cpu_ms_per_poll"],
                "ms",
                "threads -c 50",
                "< 0.8x to switch",
                None,
            ),
            h.Figure(
                f"{row['pool']}: polls/s at {args.jobs} in flight",
                row["polls_per_s"],
                threads["polls_per_s"],
                "polls/s",
                "threads -c 50",
            ),
            h.Figure(
                f"{row['pool']}: one-process ceiling (1 core / CPU per poll)",
                1000 / row["worker_cpu_ms_per_poll"],
                1000 / threads["worker_cpu_ms_per_poll"],
                "polls/s",
                "threads -c 50",
            ),
            h.Figure(
                f"{row['pool']}: jobs completed",
                row["states"].get("completed", 0),
                threads["states"].get("completed", 0),
                "jobs",
                "threads -c 50",
                note=f"states {row['states']}; see bench/out/worker_pool-*-problems.log",
            ),
            h.Figure(
                f"{row['pool']}: detection lag p99",
                row["lag_p99_s"],
                threads["lag_p99_s"],
                "s",
                "threads -c 50",
            ),
        ]
    if not pools[1:]:
        figures.append(
            h.Figure("threads -c 50: CPU per poll", threads["worker_cpu_ms_per_poll"], None, "ms")
        )
    on = [r["tasks_per_s"] for r in events["on"]]
    off = [r["tasks_per_s"] for r in events["off"]]
    figures += [
        h.Figure(
            "bare no-op tasks/s, events on",
            statistics.median(on),
            statistics.median(off),
            "tasks/s",
            "events off",
            spread=f"on {h.spread(on)}; off {h.spread(off)}",
            note="the guide quotes ~330 (on) vs ~440 (off)",
        ),
        h.Figure(
            "bare no-op CPU per task, events on",
            statistics.median(r["cpu_ms_per_task"] for r in events["on"]),
            statistics.median(r["cpu_ms_per_task"] for r in events["off"]),
            "ms",
            "events off",
        ),
    ]
    h.print_table("worker pool and task events", figures)
    for f in figures:
        if f.spread:
            print(f"  {f.name}: {f.spread}")
    h.write_result(
        "worker_pool",
        figures,
        environment=h.environment(),
        settings={**vars(args), "sim_args": sim_args},
        pools=pools,
        events=events,
    )
    plot(pools, events)


def plot(pools: list[dict[str, Any]], events: dict[str, list[dict[str, float]]]) -> None:
    plt = h.pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.2))
    labels = [f"{p['pool']} -c {p['concurrency']}" for p in pools]
    ax1.bar(labels, [p["worker_cpu_ms_per_poll"] for p in pools])
    ax1.set(title="worker CPU per poll", ylabel="ms")
    ax2.bar(labels, [p["lag_p99_s"] for p in pools], label="lag p99")
    ax2.bar(labels, [p["lag_p50_s"] for p in pools], label="lag p50")
    ax2.set(title="detection lag", ylabel="s")
    ax2.legend()
    for i, mode in enumerate(("on", "off")):
        rates = [r["tasks_per_s"] for r in events[mode]]
        ax3.scatter([i] * len(rates), rates, label=f"events {mode}")
    ax3.set_xticks([0, 1], ["events on", "events off"])
    ax3.set(title="bare no-op tasks/s (threads -c 50)", ylabel="tasks/s")
    ax3.set_ylim(bottom=0)
    h.save_plot(fig, "worker_pool")


if __name__ == "__main__":
    main()
