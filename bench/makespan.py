"""End-to-end makespan of 1,000 jobs with 10 s remote tasks under an API rate limit.

Run: ``.venv/bin/python bench/makespan.py [--jobs 1000] [--rate 50] [--ours 1.0,0.9] [--quick]``

Method
    Embedded Redis, the simulator with clone_queue_s 0, clone_processing_s 10 (no
    jitter) and ``rate_limit_per_s`` = ``--rate`` (it answers 429 above that), and
    ``--workers`` workers whose own limit (CLONEQUEUE_API_RATE_LIMIT) is set by
    ``--ours``, one run per value. Jobs have no production audio: one
    remote task each. The clock starts when the producer starts submitting and
    stops when the last job is terminal in Redis.

    The baseline is the ideal, bound by the rate limit alone:

        ideal = max(jobs x (1 create + 1 poll) / rate,  jobs / rate + one task duration)

    Every job needs at least its create and one poll at or after its task's end
    (ceil(10 s / 10 s) = 1: the minimum of bench/api_calls.py). At best those calls
    go out back to back at the limit; and the last create cannot go out before every
    other create has (jobs / rate), nor its poll sooner than a task duration after
    it. For 1,000 jobs at 50/s: max(40 s, 30 s) = 40 s. (Until this run the bench
    used calls / rate + one duration, 50 s: a bound that the calls of other jobs,
    made while the last task runs, beat.) Our 5 -> 10 s schedule would poll a 10 s
    task twice (5-5.5 s, 12.5 s) when calls are plentiful; under a binding limit
    polls move to the cadence's slow end (README: "Calls spent where they finish work"). The
    table also gives the bound for the calls actually made (calls / rate), which
    says how busy the limit was kept.

    ``--ours`` runs the batch once per setting of our own limiter, as a fraction of
    the API's: 1.0 (what an operator would set) and 0.9. The limiter paces 2 % under
    its setting (see clonequeue/workers/limiter.py): at exactly the API's rate some
    calls reached the API in the same second as the 50 before them, it answered 429,
    and the fleet-wide cooldown that followed stopped every call for the Retry-After.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from typing import Any

import _harness as h

GOAL_RATIO = 1.1


def our_polls(duration_s: float, min_s: float = 5.0, max_s: float = 10.0) -> int:
    """Polls the schedule makes for a task of ``duration_s`` when none is late."""
    schedule = h.scheduled_intervals(min_s, max_s, 1.5, 0.0)
    t, polls = 0.0, 0
    for interval in schedule:
        t += interval
        polls += 1
        if t >= duration_s:
            return polls
    return polls


def run_once(args: Any, our_rate: float) -> dict[str, Any]:
    """One stack, one batch; returns the makespan and what the ledger saw."""
    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", str(args.duration_s)]
    sim_args += ["--rate-limit-per-s", str(args.rate)]
    env = {"CLONEQUEUE_API_RATE_LIMIT": f"{our_rate:g}/second"}
    with (
        h.workdir("makespan") as path,
        h.start_stack(path, sim_args=sim_args, env=env) as stack,
    ):
        assert stack.admin is not None
        for i in range(args.workers):
            extra = ["--beat"] if i == 0 else []
            stack.start_worker(*extra, "--concurrency", str(args.concurrency))
        services = h.services_for(stack)
        progress: list[tuple[float, int]] = []
        h.banner(
            f"{args.jobs} jobs, {args.duration_s:g} s tasks, API limit {args.rate}/s, "
            f"ours {our_rate:g}/s"
        )
        started = time.time()
        h.submit(services, h.make_rows(args.jobs, prefix="mk"), "makespan")
        h.wait_finished(
            services,
            "makespan",
            timeout_s=args.jobs * 6 / args.rate + 300,
            on_tick=lambda info: progress.append((time.time() - started, info.finished_jobs)),
        )
        makespan = time.time() - started
        ledger = stack.admin.ledger()
        summary = stack.admin.summary()
        docs = h.job_docs(services, "makespan")
    states = Counter(d["state"] for d in docs)
    print(f"makespan {makespan:.1f} s, {summary['http_429']} x 429, states {dict(states)}")
    return {
        "our_rate": our_rate,
        "makespan_s": makespan,
        "started": started,
        "creates": [c["at"] - started for c in ledger["creates"]],
        "polls": [t - started for times in ledger["polls"].values() for t in times],
        "http_429": summary["http_429"],
        "states": dict(states),
        "progress": progress,
        "sim_args": sim_args,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=50, help="the API's limit, requests/s")
    parser.add_argument(
        "--ours",
        default="1.0,0.9",
        help="CLONEQUEUE_API_RATE_LIMIT as fractions of --rate, one run each",
    )
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="200 jobs, our limit = the API's")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.ours = 200, "1.0"

    per_job = 1 + our_polls(args.duration_s)
    minimum = 1 + max(1, math.ceil(args.duration_s / 10.0))
    ideal = max(args.jobs * minimum / args.rate, args.jobs / args.rate + args.duration_s)
    schedule_ideal = max(args.jobs * per_job / args.rate, args.jobs / args.rate + args.duration_s)
    runs = [run_once(args, args.rate * float(f)) for f in args.ours.split(",")]
    figures = []
    for run in runs:
        calls = len(run["creates"]) + len(run["polls"])
        label = f"ours {run['our_rate']:g}/s"
        makespan = run["makespan_s"]
        bound = max(calls / args.rate, args.jobs / args.rate + args.duration_s)
        print(
            f"{label}: vs our schedule's {per_job} calls/job ({schedule_ideal:.0f} s): "
            f"{makespan / schedule_ideal:.2f}x"
        )
        figures += [
            h.Figure(
                f"makespan, {args.jobs} jobs of {args.duration_s:g} s at {args.rate}/s ({label})",
                makespan,
                ideal,
                "s",
                f"ideal: {minimum} calls/job at the rate",
                f"<= {GOAL_RATIO}x",
                makespan <= GOAL_RATIO * ideal,
                note=f"{run['http_429']} answers 429, {calls / args.jobs:.2f} calls per job",
            ),
            h.Figure(
                f"makespan vs the calls made ({label})",
                makespan,
                bound,
                "s",
                f"{calls} calls at the rate",
                note="how busy the limit was kept",
            ),
        ]
    h.print_table("end-to-end makespan under a rate limit", figures)
    h.write_result(
        "makespan",
        figures,
        environment=h.environment(),
        settings=vars(args),
        ideal_s=ideal,
        schedule_ideal_s=schedule_ideal,
        runs=[{k: v for k, v in r.items() if k not in ("creates", "polls")} for r in runs],
    )
    plot(args, runs, ideal, schedule_ideal)


def plot(args: Any, runs: list[dict[str, Any]], ideal: float, schedule_ideal: float) -> None:
    plt = h.pyplot()
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(6.5 * (len(runs) + 1), 4.5))
    for ax, run in zip(axes, runs, strict=False):
        end = max([*run["creates"], *run["polls"], 1.0])
        ax.hist(
            [run["creates"], run["polls"]],
            bins=list(range(int(end) + 2)),
            stacked=True,
            label=["creates", "polls"],
        )
        ax.axhline(args.rate, color="red", ls=":", label="API limit")
        ax.set(
            title=f"API calls/s, our limit {run['our_rate']:g}/s ({run['http_429']} x 429)",
            xlabel="s since submit",
            ylabel="calls/s",
        )
        ax.legend()
    ax = axes[-1]
    for run in runs:
        ax.plot(
            [p[0] for p in run["progress"]],
            [p[1] for p in run["progress"]],
            label=f"ours {run['our_rate']:g}/s: {run['makespan_s']:.0f} s",
        )
    ax.axvline(ideal, color="gray", ls="--", label=f"ideal {ideal:.0f} s")
    ax.axvline(
        schedule_ideal,
        color="gray",
        ls=":",
        label=f"3 calls/job at the limit {schedule_ideal:.0f} s",
    )
    ax.set(title="jobs finished", xlabel="s since submit", ylabel="jobs")
    ax.legend()
    h.save_plot(fig, "makespan")


if __name__ == "__main__":
    main()
