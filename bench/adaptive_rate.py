"""How much of an API's rate limit the fleet turns into useful calls, when the limit moves.

Run: ``.venv/bin/python bench/adaptive_rate.py [--quick] [--workers 1,2]
[--cases exact,high,auto] [--repeat N]``

Method
    Embedded Redis, the simulator with tasks of 3-8 s (clone_processing_s and
    audio_processing_s 5.5 ± 45 %, no queue time), arrival jitter (``latency_jitter_s``,
    default 0.05 s: calls paced evenly reach the API's window unevenly) and a limit
    on the simulator's own clock and sliding one-second window that our limiter does
    not share: 40/s, then 20/s, then 40/s again (``rate_limit_schedule``, set when
    the batch is submitted). Jobs are a clone and one or two production audios
    (alternating), so a job's audios wait for its clone. Cases: our
    ``CLONEQUEUE_API_RATE_LIMIT`` exact (40/second), 1.5x too high (60/second) and
    ``auto``; each with 1 and 2 worker processes of 50 threads. Every case starts
    from an empty Redis (``auto`` learns from nothing).

Figures per case (t0: the submit starts; the busy phase runs from the first create
to the last, as in issue 15)
    pace/limit     the fleet's adaptive pace (at most the limit), sampled every 0.5 s over
                   the busy phase, / the limit: the limiter's share of the shortfall; the
                   rest (calls below the pace) is demand: no call was waiting for a slot.
    useful/limit   calls that moved work on (a create accepted, the first poll at or
                   after its task's end) in the busy phase / the API's limit integrated
                   over it. Goal >= 0.95.
    accepted/limit every call the API accepted (not 429) over the same integral: how
                   busy the limit was kept; useful/accepted is the share not wasted on
                   polls that came too early.
    429 share      calls answered 429 / calls sent. Goal <= 0.5 %.
    recovery       seconds from the limit's rise back to 40/s until the calls the API
                   accepted over the last 2 s reach 0.9x of 40/s. Goal <= 30 s.
    makespan/bound t0 to the last job terminal, over the larger of: the time the
                   minimum calls (a create and one poll per task) take at the limit's
                   schedule, and the longest job's chain (its clone's duration plus
                   its longest audio's). Goal <= 1.1.

The machine is shared, so every figure is a ratio against the limit of the same run.

The ceiling that arrival jitter sets
    Calls paced evenly at P/s, each delayed by its own uniform [0, J] s on the way,
    meet a sliding one-second window of L: the (L+1)-th arrival within a second is
    refused when its send came less than 1 + (its predecessor's delay - its own) s
    after the one L sends before it. With no 429 at all the sends must be 1 + J s
    apart every L of them: P <= L / (1 + J), 0.952x the limit at the default 50 ms
    (0.980x at 20 ms). Above it the share refused rises steeply (perfectly even sends
    through the simulator's own window, 200,000 calls at 40/s and 50 ms: 0.04 % at
    0.955x, 0.16 % at 0.957x, 0.46 % at 0.96x, 1.5 % at 0.97x, 2.2 % at 0.98x). So
    "useful >= 0.95x with <= 0.5 % 429s" leaves under 1 % at 50 ms for the drop, the
    rise and every poll that comes early; the bench prints this edge beside the
    figures (``--jitter-s 0.02`` runs the same at 20 ms).
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import _harness as h

TASK_S, TASK_JITTER = 5.5, 0.45  # 3.0-8.0 s
GOALS = {"useful": 0.95, "http_429": 0.005, "recovery_s": 30.0, "makespan": 1.1}
CASES = {"exact": "40/second", "high": "60/second", "auto": "auto"}
RECOVERY_WINDOW_S = 2.0


@dataclass(frozen=True)
class Plan:
    """The API's limit over time: ``high``, ``low`` from ``drop_at`` to ``rise_at``, high again."""

    high: int
    low: int
    drop_at: float
    rise_at: float

    def limit(self, t: float) -> int:
        return self.low if self.drop_at <= t < self.rise_at else self.high

    def calls_between(self, a: float, b: float) -> float:
        """The integral of the limit over [a, b] (seconds since t0)."""
        edges = sorted({a, b, *(e for e in (self.drop_at, self.rise_at) if a < e < b)})
        return sum((y - x) * self.limit(x) for x, y in itertools.pairwise(edges))

    def time_for(self, calls: float) -> float:
        """How long from t0 ``calls`` take at the limit."""
        lo, hi = 0.0, calls / min(self.low, self.high) + 1
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.calls_between(0, mid) < calls else (lo, mid)
        return hi


def rows_for(jobs: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(jobs):
        cid = f"ar-{i:06d}"
        rows.append(
            {
                "custom_id": cid,
                "clone": {"fileUrl": f"https://voices.example.com/{cid}.mp3"},
                "audios": [
                    {"contentText": f"Line {k} of {cid}. Thank you."} for k in range(1 + i % 2)
                ],
            }
        )
    return rows


class Sampler:
    """The fleet's adaptive rate (Redis) and the simulator's 429 count, every 0.5 s."""

    def __init__(self, services: Any, admin: Any, t0: float) -> None:
        self.services, self.admin, self.t0 = services, admin, t0
        self.points: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                snap = self.services.rate_snapshot()
                state = self.services.redis.hget(snap_key(self.services), "hold")
                summary = self.admin.summary()
                queues = self._queues()
            except Exception:  # noqa: BLE001 - a missed sample is no reason to stop
                continue
            self.points.append(
                {
                    "t": time.time() - self.t0,
                    "rate": snap.rate,
                    "learned": snap.learned,
                    "hold": float(state or 0),
                    "http_429": summary["http_429"],
                    "queues": queues,
                }
            )

    def _queues(self) -> dict[str, int]:
        """Messages waiting per queue (list, and countdowns in its scheduled set), steps
        in flight and parked: where demand waits when calls go unused."""
        from clonequeue.dispatch.scheduled import scheduled_counts

        r = self.services.redis
        keys = self.services.jobs.keys
        names = self.services.dispatcher.queues
        lists = (names.submit, names.produce, names.poll)
        later = scheduled_counts(r, lists)
        with r.pipeline(transaction=False) as pipe:
            for name in lists:
                pipe.llen(name)
            pipe.scard(keys.inflight)
            pipe.zcard(keys.parked("clone"))
            pipe.zcard(keys.parked("audio"))
            got = [int(n) for n in pipe.execute()]
        counts: dict[str, int] = {}
        for label, name, waiting in zip(("submit", "produce", "poll"), lists, got, strict=False):
            counts[label], counts[f"{label}_later"] = waiting, later[name]
        return {**counts, "inflight": got[3], "parked_clone": got[4], "parked_audio": got[5]}


def snap_key(services: Any) -> str:
    from clonequeue.workers.limiter import rate_limiter

    return rate_limiter(services.settings, services.redis, services.jobs.keys).state_key


def run_case(args: Any, plan: Plan, case: str, workers: int) -> dict[str, Any]:
    sim_args = [
        "--clone-queue-s",
        "0",
        "--clone-processing-s",
        str(TASK_S),
        "--audio-queue-s",
        "0",
        "--audio-processing-s",
        str(TASK_S),
        "--jitter-ratio",
        str(TASK_JITTER),
        "--rate-limit-per-s",
        str(plan.high),
        "--latency-jitter-s",
        str(args.jitter_s),
    ]
    env = {"CLONEQUEUE_API_RATE_LIMIT": CASES[case]}
    with (
        h.workdir("adaptive") as path,
        h.start_stack(path, sim_args=sim_args, env=env) as stack,
    ):
        assert stack.admin is not None
        for i in range(workers):
            extra = ["--beat"] if i == 0 else []
            stack.start_worker(*extra, "--concurrency", str(args.concurrency))
        services = h.services_for(stack)
        h.banner(f"{case} ({CASES[case]}), {workers} worker process(es), {args.jobs} jobs")
        schedule = [[plan.drop_at, plan.low], [plan.rise_at, plan.high]]
        t0 = time.time()
        stack.admin.configure(rate_limit_schedule=schedule)
        with Sampler(services, stack.admin, t0) as sampler:
            h.submit(services, rows_for(args.jobs), "adaptive")
            h.wait_finished(services, "adaptive", timeout_s=args.jobs * 3 + 300)
            makespan = time.time() - t0
        ledger = stack.admin.ledger()
        summary = stack.admin.summary()
        docs = h.job_docs(services, "adaptive")
        ids = [s["remote_id"] for d in docs for s in h.steps_of(d) if s.get("remote_id")]
        tasks = h.sim_tasks(stack.admin, ids)
        rate_end = services.rate_snapshot().to_dict()
        for process in stack.workers:
            h.keep_problems(process, f"adaptive_rate-{case}-{workers}-{process.name}")
    result = analyse(plan, case, workers, t0, makespan, ledger, summary, docs, tasks)
    busy = [p for p in sampler.points if result["busy0_s"] <= p["t"] <= result["busy1_s"]]
    if busy:  # the limiter's share of the shortfall: its pace (at most the limit) / the limit
        pace = sum(min(p["rate"] or 0.0, plan.limit(p["t"])) for p in busy)
        result["pace_ratio"] = pace / sum(plan.limit(p["t"]) for p in busy)
        print(f"pace/limit over the busy phase {result['pace_ratio']:.3f}", flush=True)
    return result | {
        "samples": sampler.points,
        "rate_end": rate_end,
    }


def analyse(
    plan: Plan,
    case: str,
    workers: int,
    t0: float,
    makespan: float,
    ledger: dict[str, Any],
    summary: dict[str, Any],
    docs: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    creates = sorted(c["at"] - t0 for c in ledger["creates"])
    polls = {tid: sorted(t - t0 for t in times) for tid, times in ledger["polls"].items()}
    all_polls = sorted(t for times in polls.values() for t in times)
    useful_at = list(creates)
    early = 0
    for tid, times in polls.items():
        end = float(tasks[tid]["finished_at"]) - t0 if tid in tasks else None
        done = [t for t in times if end is not None and t >= end]
        if done:
            useful_at.append(done[0])
        early += len(times) - len(done)
    busy0, busy1 = creates[0], creates[-1]
    allowed = plan.calls_between(busy0, busy1)
    accepted = sorted([*creates, *all_polls])
    in_busy = sum(busy0 <= t <= busy1 for t in accepted)
    useful_busy = sum(busy0 <= t <= busy1 for t in useful_at)
    sent = len(accepted) + summary["http_429"]
    recovery = recovery_s(accepted, plan, busy1)
    chain = 0.0
    for d in docs:
        durations = []
        for s in h.steps_of(d):
            task = tasks.get(s.get("remote_id") or "")
            if task:
                durations.append(float(task["finished_at"]) - float(task["created_at"]))
        if durations:
            chain = max(chain, durations[0] + max(durations[1:], default=0.0))
    minimum_calls = 2 * len(tasks)
    bound = max(plan.time_for(minimum_calls), chain)
    states = Counter(d["state"] for d in docs)
    last_jobs = tail_jobs(docs, tasks, polls, t0)
    poll_lag = first_poll_lag(docs, tasks, polls, t0)
    result = {
        "case": case,
        "setting": CASES[case],
        "workers": workers,
        "busy_s": busy1 - busy0,
        "busy0_s": busy0,
        "busy1_s": busy1,
        "useful_ratio": useful_busy / allowed,
        "accepted_ratio": in_busy / allowed,
        "http_429": summary["http_429"],
        "share_429": summary["http_429"] / sent if sent else 0.0,
        "early_polls": early,
        "calls_per_task": len(accepted) / max(len(tasks), 1),
        "recovery_s": recovery,
        "rise_to_busy_end_s": busy1 - plan.rise_at,
        "makespan_s": makespan,
        "bound_s": bound,
        "makespan_ratio": makespan / bound,
        "states": dict(states),
        "phase_ratios": phase_ratios(accepted, useful_at, plan, busy0, busy1),
        "last_jobs": last_jobs,
        "first_poll_lag": poll_lag,
        "per_s": {  # calls the API accepted in each second since t0, for plots and diagnosis
            "creates": per_second(creates, makespan),
            "polls": per_second(all_polls, makespan),
            "useful": per_second(useful_at, makespan),
        },
    }
    print(
        f"useful/limit {result['useful_ratio']:.3f}, accepted/limit "
        f"{result['accepted_ratio']:.3f}, 429 {summary['http_429']} "
        f"({100 * result['share_429']:.2f} %), recovery {fmt_recovery(recovery)}, "
        f"makespan {makespan:.1f} s / bound {bound:.1f} s = {result['makespan_ratio']:.2f}, "
        f"{result['calls_per_task']:.2f} calls/task, phases {result['phase_ratios']}",
        flush=True,
    )
    print(f"first poll after a task's end, p50/p90/max s: {poll_lag}", flush=True)
    return result


def first_poll_lag(
    docs: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    polls: dict[str, list[float]],
    t0: float,
) -> dict[str, list[float]]:
    """Seconds from a task's end to its first poll at or after it, per kind: p50, p90,
    max, for tasks created in each quarter of the run (where finished work waited)."""
    lags: dict[str, list[tuple[float, float]]] = {"clone": [], "audio": []}
    for doc in docs:
        for index, step in enumerate(h.steps_of(doc)):
            task = tasks.get(step.get("remote_id") or "")
            if not task:
                continue
            end = float(task["finished_at"]) - t0
            after = [t for t in polls.get(step["remote_id"], []) if t >= end]
            if after:
                kind = "audio" if index else "clone"
                lags[kind].append((float(task["created_at"]) - t0, after[0] - end))
    out: dict[str, list[float]] = {}
    for kind, pairs in lags.items():
        pairs.sort()
        for quarter in range(4):
            share = pairs[quarter * len(pairs) // 4 : (quarter + 1) * len(pairs) // 4]
            part = sorted(lag for _, lag in share)
            if part:
                out[f"{kind} q{quarter + 1}"] = [
                    round(part[len(part) // 2], 1),
                    round(part[int(len(part) * 0.9)], 1),
                    round(part[-1], 1),
                ]
    return out


def tail_jobs(
    docs: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    polls: dict[str, list[float]],
    t0: float,
    count: int = 5,
) -> list[list[dict[str, Any]]]:
    """The steps of the jobs that finished last (times since t0): where the makespan's tail goes."""

    def end(doc: dict[str, Any]) -> float:
        return max(float(s.get("completed_at") or 0) for s in h.steps_of(doc))

    out = []
    for doc in sorted(docs, key=end)[-count:]:
        steps = []
        for step in h.steps_of(doc):
            tid = step.get("remote_id") or ""
            task = tasks.get(tid, {})
            steps.append(
                {
                    "created": round(float(task.get("created_at", t0)) - t0, 2),
                    "finished": round(float(task.get("finished_at", t0)) - t0, 2),
                    "polls": [round(t, 2) for t in polls.get(tid, [])],
                    "recorded": round(float(step.get("completed_at") or t0) - t0, 2),
                    "attempts": step.get("attempts"),
                }
            )
        out.append(steps)
    return out


def phase_ratios(
    accepted: list[float], useful: list[float], plan: Plan, busy0: float, busy1: float
) -> dict[str, str]:
    """accepted/limit and useful/limit per phase of the limit (within the busy phase)."""
    out = {}
    for name, a, b in (
        ("before", busy0, plan.drop_at),
        ("low", plan.drop_at, plan.rise_at),
        ("after", plan.rise_at, busy1),
    ):
        a, b = max(a, busy0), min(b, busy1)
        if b - a < 1:
            continue
        allowed = plan.calls_between(a, b)
        n = sum(a <= t < b for t in accepted)
        u = sum(a <= t < b for t in useful)
        out[name] = f"{n / allowed:.2f}/{u / allowed:.2f}"
    return out


def per_second(times: list[float], end: float) -> list[int]:
    counts = [0] * (int(end) + 2)
    for t in times:
        if 0 <= t < len(counts):
            counts[int(t)] += 1
    return counts


def recovery_s(accepted: list[float], plan: Plan, busy_end: float) -> float | None:
    """From the rise until the accepted calls of the last 2 s reach 0.9x the limit; None: never."""
    need = 0.9 * plan.high * RECOVERY_WINDOW_S
    lo = 0
    for hi, t in enumerate(accepted):
        while accepted[lo] <= t - RECOVERY_WINDOW_S:
            lo += 1
        if t >= plan.rise_at + RECOVERY_WINDOW_S and hi - lo + 1 >= need:
            return t - plan.rise_at
        if t > busy_end:
            break
    return None


MEANS = (
    "useful_ratio",
    "accepted_ratio",
    "pace_ratio",
    "share_429",
    "http_429",
    "calls_per_task",
    "makespan_s",
    "bound_s",
    "makespan_ratio",
    "rise_to_busy_end_s",
)


def mean_of(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's runs as one result: the mean of each figure (recovery: None if any run
    never recovered), and ``each``, every run's useful, 429s and recovery, for the note."""
    first = group[0]
    if len(group) == 1:
        return first | {"each": ""}
    mean = {k: sum(r[k] for r in group) / len(group) for k in MEANS if k in first}
    recoveries = [r["recovery_s"] for r in group]
    each = ", ".join(
        f"{r['useful_ratio']:.3f}x/{r['http_429']}/{fmt_recovery(r['recovery_s'])}" for r in group
    )
    return (
        first
        | mean
        | {
            "recovery_s": None if None in recoveries else sum(recoveries) / len(recoveries),
            "phase_ratios": [r["phase_ratios"] for r in group],
            "each": f"{len(group)} runs (useful/429s/recovery): {each}; ",
        }
    )


def fmt_recovery(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=560)
    parser.add_argument("--workers", default="1,2", help="worker process counts, one run each")
    parser.add_argument("--cases", default="exact,high,auto")
    parser.add_argument("--high", type=int, default=40, help="the API's limit, requests/s")
    parser.add_argument("--low", type=int, default=20, help="...while it is lowered")
    parser.add_argument("--drop-at", type=float, default=25.0, help="s after submit")
    parser.add_argument("--rise-at", type=float, default=45.0, help="s after submit")
    parser.add_argument("--jitter-s", type=float, default=0.05, help="latency_jitter_s")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per case: figures are their mean, each run's value in the note "
        "(single runs of one case differ by up to ~0.05x useful: when the rise is found)",
    )
    parser.add_argument("--quick", action="store_true", help="300 jobs, shorter phases, 2 workers")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.drop_at, args.rise_at, args.workers = 300, 12.0, 24.0, "2"
    plan = Plan(args.high, args.low, args.drop_at, args.rise_at)
    runs = [
        [run_case(args, plan, case, int(workers)) for _ in range(args.repeat)]
        for workers in args.workers.split(",")
        for case in args.cases.split(",")
    ]
    results = [mean_of(group) for group in runs]
    figures = []
    for r in results:
        label = f"{r['case']} ({r['setting']}), {r['workers']}w"
        recovery = r["recovery_s"]
        figures += [
            h.Figure(
                f"{label}: useful calls / limit",
                r["useful_ratio"],
                None,
                "x",
                goal=f">= {GOALS['useful']}",
                met=r["useful_ratio"] >= GOALS["useful"],
                note=f"{r['each']}accepted/limit {r['accepted_ratio']:.3f}; pace/limit "
                f"{r.get('pace_ratio', float('nan')):.3f}; per phase accepted/useful "
                f"{r['phase_ratios']}; {r['calls_per_task']:.2f} calls/task",
            ),
            h.Figure(
                f"{label}: calls answered 429",
                100 * r["share_429"],
                None,
                "%",
                goal=f"<= {100 * GOALS['http_429']:g} %",
                met=r["share_429"] <= GOALS["http_429"],
                note=f"{r['http_429']} x 429",
            ),
            h.Figure(
                f"{label}: back to 0.9x after the rise",
                float("nan") if recovery is None else recovery,
                None,
                "s",
                goal=f"<= {GOALS['recovery_s']:g} s",
                met=recovery is not None and recovery <= GOALS["recovery_s"],
                note=f"busy phase ended {r['rise_to_busy_end_s']:.0f} s after the rise",
            ),
            h.Figure(
                f"{label}: makespan",
                r["makespan_s"],
                r["bound_s"],
                "s",
                "bound",
                goal=f"<= {GOALS['makespan']}x",
                met=r["makespan_ratio"] <= GOALS["makespan"],
            ),
        ]
    h.print_table("adaptive rate against a moving API limit", figures)
    edge = 1 / (1 + args.jitter_s)
    print(
        f"the most a sliding 1 s window admits with no 429 at {1000 * args.jitter_s:.0f} ms "
        f"arrival jitter: {edge:.3f}x the limit (see the docstring)",
        flush=True,
    )
    h.write_result(
        "adaptive_rate",
        figures,
        environment=h.environment(),
        settings=vars(args),
        runs=[{k: v for k, v in r.items() if k != "samples"} for group in runs for r in group],
        samples={
            f"{r['case']}-{r['workers']}" + (f"-{i}" if args.repeat > 1 else ""): r["samples"]
            for group in runs
            for i, r in enumerate(group)
        },
    )


if __name__ == "__main__":
    main()
