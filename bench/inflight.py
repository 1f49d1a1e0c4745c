"""In-flight capacity: how many 60 s remote tasks the workers keep polling on cadence.

Run: ``.venv/bin/python bench/inflight.py [--steps 500,1000,2000,3000,4000] [--workers 2]
[--concurrency 50] [--quick]``

Method
    One stack: embedded Redis (free port), the simulator (clone_queue_s 0,
    clone_processing_s 60, jitter_ratio 0.25, so remote durations spread over
    45-75 s and the moment of completion falls anywhere in a poll interval), and
    ``--workers`` worker processes (``clonequeue worker``, threads pool,
    ``--concurrency`` threads each, task events on as in production; the first
    also runs the watchdog beat). Poll cadence is the default 5 -> 10 s; the rate
    limit (5000/s) and the in-flight cap do not bind. Jobs have no production audio,
    so each job is one remote task and "in flight" is the number of jobs.

    Each step submits N jobs at once as its own batch and waits for all of them.
    The steady window of a step runs from its last create (+1 s) to its first
    remote completion: N tasks in flight, nothing but polls. In it:

    * polls/s from the simulator's ledger (poll times per task);
    * worker CPU ms per poll: psutil CPU of the worker process trees over the
      window / polls in it;
    * lateness: each poll's delay beyond its schedule (5-5.5 s, 7.5 s, then 10 s);
    * detection lag for every job: our record's ``completed_at`` minus the
      simulator's ``finished_at`` (sim clock = real time);
    * peak RSS of each worker process during the step.

    Baseline, same run: a bare Celery app (same broker, threads, same concurrency,
    events on) draining pre-published no-op tasks -> CPU per task, plus a bare
    urllib3 keep-alive GET loop to the simulator -> client CPU per GET. Their sum is
    the cost of "a task that does one GET"; the goal is ours <= 1.5x that.

    A step "holds" when lag p99 <= poll_interval_max + 1 s, poll lateness p99 <=
    1 s, every job completed, and worker RSS (all workers) <= 300 MB.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

import _harness as h

GOAL_RATIO = 1.5
GOAL_RSS_MB = 300.0
POLL_MAX_S = 10.0
GOAL_LAG_S = POLL_MAX_S + 1.0
GOAL_LATENESS_S = 1.0
GOAL_JOBS = 3000


def holds(stats: h.StepStats) -> bool:
    return (
        stats.lag_p99_s <= GOAL_LAG_S
        and stats.lateness_p99_s <= GOAL_LATENESS_S
        and stats.states.get("completed", 0) == stats.jobs
        and sum(stats.peak_rss_mb.values()) <= GOAL_RSS_MB
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="500,1000,2000,3000,4000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--baseline-tasks", type=int, default=4000)
    parser.add_argument("--name", default="inflight")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 small steps, 20 s")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.duration_s, args.baseline_tasks = "100,300", 20.0, 1000
    steps = [int(s) for s in args.steps.split(",")]

    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", str(args.duration_s)]
    sim_args += ["--jitter-ratio", "0.25"]
    with h.workdir("inflight") as path, h.start_stack(path, sim_args=sim_args) as stack:
        assert stack.admin is not None
        h.banner("baseline: bare Celery no-op task + bare urllib3 GET")
        base = h.measure_baseline(
            stack, path, tasks=args.baseline_tasks, gets=3000, concurrency=args.concurrency
        )
        print(
            f"bare no-op {base.noop_cpu_ms:.3f} ms CPU/task ({base.noop_tasks_per_s:.0f}/s), "
            f"bare GET {base.get_cpu_ms:.3f} ms CPU"
        )
        for i in range(args.workers):
            extra = ["--beat"] if i == 0 else []
            stack.start_worker(*extra, "--concurrency", str(args.concurrency))
        services = h.services_for(stack)
        workers = list(h.worker_pids(stack))
        results: list[dict[str, Any]] = []
        lags: dict[int, list[float]] = {}
        lateness: dict[int, list[tuple[float, float]]] = {}
        with h.Meter({**h.worker_pids(stack), **h.system_pids(stack)}) as meter:
            for n in steps:
                h.banner(f"{n} jobs in flight")
                stats = h.run_batch(
                    stack,
                    services,
                    meter,
                    h.make_rows(n, prefix=f"n{n}"),
                    f"inflight-{n}",
                    timeout_s=args.duration_s * 1.3 + n / 20 + 120,
                    workers=workers,
                    allow_unfinished=True,
                )
                lags[n] = stats.lags
                lateness[n] = stats.lateness_points
                row = {
                    k: v for k, v in asdict(stats).items() if k not in ("lags", "lateness_points")
                }
                row["holds"] = holds(stats)
                results.append(row)
                print(
                    f"{n}: {stats.polls_per_s:.0f} polls/s, "
                    f"{stats.worker_cpu_ms_per_poll:.2f} ms CPU/poll "
                    f"({stats.worker_cores:.2f} cores; sim "
                    f"{stats.other_cores.get('simulator', 0):.2f}, "
                    f"redis {stats.other_cores.get('redis', 0):.2f}), "
                    f"lateness p99 {stats.lateness_p99_s:.2f} s (while creating "
                    f"{stats.lateness_ramp_p99_s:.2f} s), lag p50/p99 "
                    f"{stats.lag_p50_s:.1f}/{stats.lag_p99_s:.1f} s, RSS "
                    f"{sum(stats.peak_rss_mb.values()):.0f} MB, window {stats.window_s:.0f} s, "
                    f"creates over {stats.create_span_s:.1f} s, holds={row['holds']}",
                    flush=True,
                )
            timeline = {n: meter.series(n) for n in meter.pids}

    figures = summarise(results, base, workers=args.workers)
    h.print_table(f"in-flight capacity ({args.workers} worker(s) x {args.concurrency})", figures)
    print_steps(results, base)
    h.write_result(
        args.name,
        figures,
        environment=h.environment(),
        settings={**vars(args), "sim_args": sim_args},
        baseline=asdict(base),
        steps=results,
    )
    plot(args.name, results, base, lags, lateness, timeline)


def summarise(results: list[dict[str, Any]], base: h.Baseline, *, workers: int) -> list[h.Figure]:
    held = [r["jobs"] for r in results if r["holds"]]
    capacity = max(held, default=0)
    broke = [r["jobs"] for r in results if not r["holds"]]
    at = next((r for r in results if r["jobs"] == GOAL_JOBS), results[-1])
    n = at["jobs"]
    rss = sum(at["peak_rss_mb"].values())
    return [
        h.Figure(
            "jobs in flight that hold cadence and lag",
            capacity,
            GOAL_JOBS,
            "jobs",
            "goal",
            f">= {GOAL_JOBS}",
            capacity >= GOAL_JOBS,
            note=f"first step that broke: {min(broke)}" if broke else "no step broke",
        ),
        h.Figure(f"polls/s at {n} in flight", at["polls_per_s"], note=f"{workers} worker(s)"),
        h.Figure(
            f"worker CPU per poll at {n}",
            at["worker_cpu_ms_per_poll"],
            base.per_poll_ms,
            "ms",
            "no-op task + GET",
            f"<= {GOAL_RATIO}x",
            at["worker_cpu_ms_per_poll"] <= GOAL_RATIO * base.per_poll_ms,
        ),
        h.Figure(f"detection lag p50 at {n}", at["lag_p50_s"], POLL_MAX_S, "s", "poll interval"),
        h.Figure(
            f"detection lag p99 at {n}",
            at["lag_p99_s"],
            POLL_MAX_S,
            "s",
            "poll interval",
            f"<= {GOAL_LAG_S:g} s",
            at["lag_p99_s"] <= GOAL_LAG_S,
        ),
        h.Figure(
            f"poll lateness p99 at {n}",
            at["lateness_p99_s"],
            goal=f"<= {GOAL_LATENESS_S:g} s",
            unit="s",
            met=at["lateness_p99_s"] <= GOAL_LATENESS_S,
        ),
        h.Figure(
            f"poll lateness p99 at {n}, while the creates go out",
            at["lateness_ramp_p99_s"],
            unit="s",
            note="N jobs submitted at once: polls wait behind the create backlog",
        ),
        h.Figure(
            f"worker RSS peak at {n} (all workers)",
            rss,
            GOAL_RSS_MB,
            "MB",
            "goal",
            f"<= {GOAL_RSS_MB:g} MB",
            rss <= GOAL_RSS_MB,
        ),
    ]


def print_steps(results: list[dict[str, Any]], base: h.Baseline) -> None:
    print(f"\nper step (baseline {base.per_poll_ms:.2f} ms CPU per no-op task + GET):")
    header = (
        f"{'jobs':>6} {'polls/s':>8} {'ms/poll':>8} {'ratio':>6} {'cores':>6} {'sim':>5} "
        f"{'redis':>6} {'late99':>7} {'ramp99':>7} {'lag50':>6} {'lag99':>6} {'RSS MB':>7} "
        f"{'holds':>6}"
    )
    print(header)
    for r in results:
        print(
            f"{r['jobs']:>6} {r['polls_per_s']:>8.0f} {r['worker_cpu_ms_per_poll']:>8.2f} "
            f"{r['worker_cpu_ms_per_poll'] / base.per_poll_ms:>6.2f} {r['worker_cores']:>6.2f} "
            f"{r['other_cores'].get('simulator', 0):>5.2f} "
            f"{r['other_cores'].get('redis', 0):>6.2f} "
            f"{r['lateness_p99_s']:>7.2f} {r['lateness_ramp_p99_s']:>7.2f} "
            f"{r['lag_p50_s']:>6.1f} {r['lag_p99_s']:>6.1f} "
            f"{sum(r['peak_rss_mb'].values()):>7.0f} {'yes' if r['holds'] else 'NO':>6}"
        )


def plot(
    name: str,
    results: list[dict[str, Any]],
    base: h.Baseline,
    lags: dict[int, list[float]],
    lateness: dict[int, list[tuple[float, float]]],
    timeline: dict[str, dict[str, list[float]]],
) -> None:
    plt = h.pyplot()
    jobs = [r["jobs"] for r in results]
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    ax = axes[0][0]
    ax.plot(jobs, [r["polls_per_s"] for r in results], "o-", label="measured")
    ax.plot(jobs, [n / POLL_MAX_S for n in jobs], "--", label="N / 10 s (floor)")
    ax.set(title="polls/s in the steady window", xlabel="jobs in flight", ylabel="polls/s")
    ax.legend()
    ax = axes[0][1]
    ax.plot(jobs, [r["worker_cpu_ms_per_poll"] for r in results], "o-", label="ours")
    ax.axhline(base.per_poll_ms, color="gray", ls="--", label="baseline: no-op + GET")
    ax.axhline(GOAL_RATIO * base.per_poll_ms, color="red", ls=":", label=f"goal {GOAL_RATIO}x")
    ax.set(title="worker CPU per poll", xlabel="jobs in flight", ylabel="ms")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax = axes[0][2]
    ax.plot(jobs, [r["lag_p50_s"] for r in results], "o-", label="p50")
    ax.plot(jobs, [r["lag_p99_s"] for r in results], "o-", label="p99")
    ax.plot(jobs, [r["lateness_p99_s"] for r in results], "o-", label="poll lateness p99")
    ax.axhline(GOAL_LAG_S, color="red", ls=":", label="goal p99")
    ax.set(title="detection lag (remote done -> stored)", xlabel="jobs in flight", ylabel="s")
    ax.legend()
    ax = axes[1][0]
    ax.plot(jobs, [sum(r["peak_rss_mb"].values()) for r in results], "o-", label="all workers")
    ax.axhline(GOAL_RSS_MB, color="red", ls=":", label="goal")
    ax.set(title="worker RSS peak", xlabel="jobs in flight", ylabel="MB")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax = axes[1][1]
    for n, values in lags.items():
        if values:
            ordered = sorted(values)
            ax.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=f"{n} jobs")
    ax.axvline(GOAL_LAG_S, color="red", ls=":")
    ax.set(title="detection lag CDF", xlabel="s", ylabel="fraction of jobs")
    ax.legend()
    ax = axes[1][2]
    t0 = min((s["t"][0] for s in timeline.values() if s["t"]), default=0.0)
    for proc, series in timeline.items():
        ax.plot([t - t0 for t in series["t"]], series["cores"], label=proc, lw=0.8)
    ax.set(title="CPU over the run (cores)", xlabel="s", ylabel="cores")
    ax.legend()
    ax = axes[0][3]
    for n, points in lateness.items():
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=2, alpha=0.3, label=f"{n}")
    ax.axhline(GOAL_LATENESS_S, color="red", ls=":")
    ax.set(title="poll lateness vs time since submit", xlabel="s", ylabel="s late")
    ax.legend(title="jobs", markerscale=5)
    ax = axes[1][3]
    ax.plot(jobs, [r["lateness_ramp_p99_s"] for r in results], "o-", label="while creating")
    ax.plot(jobs, [r["lateness_p99_s"] for r in results], "o-", label="steady window")
    ax.axhline(GOAL_LATENESS_S, color="red", ls=":", label="goal")
    ax.set(title="poll lateness p99", xlabel="jobs in flight", ylabel="s")
    ax.legend()
    h.save_plot(fig, name)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"took {time.monotonic() - started:.0f} s")
