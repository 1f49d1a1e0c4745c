"""Where a poll's CPU goes in the worker: py-spy samples of the steady poll load, by part.

Run: ``.venv/bin/python bench/profile_worker.py [--jobs 2000] [--seconds 30] [--quick]``
Needs py-spy (``.venv/bin/pip install py-spy``; not a clonequeue dependency) and the
right to ptrace the worker (root, or kernel.yama.ptrace_scope 0).

Method
    Embedded Redis, the simulator (clones 0 + 60 s, jitter 0.25), one worker
    (threads, -c 50, events on). ``--jobs`` jobs are submitted; once all are
    created, ``py-spy record --gil --nonblocking`` samples the worker for
    ``--seconds`` (only the thread holding the GIL: in a GIL-bound process that is
    where CPU goes). psutil measures the worker's CPU over the same window and the
    ledger counts the polls, so each part's share converts to ms per poll.

    Samples are put in one part each, by what is on the stack, in this order:
    inside ``steps.run_poll``: the rate limiter, the HTTP GET (+ parse), the
    record_poll Lua call, the publish of the next countdown message, other; else
    Celery's task events, its log lines, kombu's unacked bookkeeping (QoS.append
    on fetch, QoS.ack), the task trace, message receive and the ETA timer,
    kombu's BRPOP fetch and event loop, and the rest. The collapsed stacks are kept
    in bench/out/profile_worker.txt (flamegraph.pl reads them).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _harness as h

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

IN_POLL = (
    ("limiter.py", "poll: rate limiter (limits moving window, Redis)"),
    ("clonequeue/api/", "poll: HTTP GET + parse (urllib3, json, pydantic)"),
    ("store/jobs.py", "poll: record_poll Lua (redis-py)"),
    ("workers/tasks.py", "poll: publish next countdown message (apply_async, kombu)"),
)


def parse_frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = FRAME.match(part.strip())
        if match:
            frames.append((match["func"], match["file"]))
        else:
            frames.append((part.strip(), ""))
    return frames


def classify(frames: list[tuple[str, str]]) -> str:
    """One part per sample; ``frames`` run from the root to the leaf."""
    files = [f for _, f in frames]
    funcs = [fn for fn, _ in frames]
    for i, (func, file) in enumerate(frames):
        if func == "run_poll" and file.endswith("steps.py"):
            for deeper in files[i + 1 :]:
                for needle, part in IN_POLL:
                    if needle in deeper:
                        return part
            return "poll: other (ours)"
        if func == "run_create" and file.endswith("steps.py"):
            return "creates"
    if any("watchdog.py" in f for f in files):
        return "watchdog"
    if any("clonequeue/metrics" in f or "prometheus_client" in f for f in files):
        return "task wrapper: metrics"
    if any("celery/events" in f for f in files) or "send_event" in funcs:
        return "Celery: task events"
    if any(f.endswith("logging/__init__.py") or "clonequeue/logs" in f for f in files):
        return "Celery: log lines (received/succeeded)"
    if "QoS.append" in funcs:
        return "kombu: unacked bookkeeping of a fetched message (QoS.append)"
    if any(fn in ("QoS.ack", "Message.ack", "Channel.basic_ack") for fn in funcs):
        return "kombu: ack (QoS.ack)"
    if any("celery/app/trace.py" in f for f in files):
        return "Celery: task trace (other)"
    if any("strategy.py" in f or "timer" in f for f in files):
        return "Celery: receive message + ETA timer"
    if any("_brpop" in fn or "on_poll_start" in fn or "on_readable" in fn for fn in funcs):
        return "kombu: BRPOP fetch + event loop"
    if any("kombu/" in f for f in files):
        return "kombu: other"
    if any("celery/" in f for f in files):
        return "Celery: other"
    return "other"


def leaf_self(frames: list[tuple[str, str]]) -> str:
    func, file = frames[-1] if frames else ("?", "")
    short = "/".join(Path(file).parts[-2:]) if file else ""
    return f"{func} ({short})"


# Functions whose inclusive share is worth knowing (each sample counts once per name).
INCLUSIVE = (
    "Redis.__init__",  # kombu builds a redis.Redis object per QoS call
    "Celery.send_task",  # publishing the next countdown message
    "EventDispatcher.send",  # task events
    "Logger._log",  # log lines
    "QoS.append",
    "QoS.ack",
    "ApiRateLimiter.acquire",
    "JobStore.record_poll",
    "ApiClient.get_task",
    "Script.__call__",  # every EVALSHA
    "Pipeline.execute",
    "Redis.execute_command",
    "RedisCluster.execute_command",
)


def analyse(raw: Path) -> tuple[Counter[str], Counter[str], int, Counter[str]]:
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = parse_frames(stack)
        n = int(count)
        parts[classify(frames)] += n
        leaves[leaf_self(frames)] += n
        funcs = {fn for fn, _ in frames}
        for name in INCLUSIVE:
            if name in funcs:
                inclusive[name] += n
        total += n
    return parts, leaves, total, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--concurrency", type=int, default=50, help="worker threads")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds = 300, 10.0
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")

    raw = h.OUT / "profile_worker.txt"
    h.OUT.mkdir(parents=True, exist_ok=True)
    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", "60", "--jitter-ratio", "0.25"]
    with h.workdir("profile") as path, h.start_stack(path, sim_args=sim_args) as stack:
        assert stack.admin is not None
        worker = stack.start_worker("--concurrency", str(args.concurrency))
        assert worker.pid is not None
        services = h.services_for(stack)
        h.submit(services, h.make_rows(args.jobs, prefix="prof"), "profile")
        deadline = time.monotonic() + 120
        while stack.admin.summary()["creates_total"] < args.jobs:
            if time.monotonic() > deadline:
                raise TimeoutError("creates did not finish")
            time.sleep(0.5)
        time.sleep(1.0)
        h.banner(f"py-spy on the worker for {args.seconds:g} s ({args.jobs} jobs in flight)")
        t0, cpu0 = time.time(), h.tree_cpu_s(worker.pid)
        subprocess.run(
            [
                py_spy, "record", "--pid", str(worker.pid), "--gil", "--nonblocking",
                "--rate", str(args.rate), "--duration", str(int(args.seconds)),
                "--format", "raw", "--output", str(raw),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        t1, cpu1 = time.time(), h.tree_cpu_s(worker.pid)
        ledger = stack.admin.ledger()
    polls = sum(1 for times in ledger["polls"].values() for t in times if t0 <= t <= t1)
    cpu_ms_per_poll = (cpu1 - cpu0) * 1000 / max(polls, 1)
    parts, leaves, total, inclusive = analyse(raw)

    print(
        f"\n{polls} polls in {t1 - t0:.0f} s ({polls / (t1 - t0):.0f}/s), worker CPU "
        f"{cpu_ms_per_poll:.2f} ms per poll, {total} samples"
    )
    breakdown = []
    print(f"{'part':62} {'share':>6} {'ms/poll':>8}")
    for part, n in parts.most_common():
        share = n / total
        breakdown.append({"part": part, "share": share, "ms_per_poll": share * cpu_ms_per_poll})
        print(f"{part:62} {share:>6.1%} {share * cpu_ms_per_poll:>8.3f}")
    print("\ninclusive share of some functions (ms per poll):")
    for name, n in inclusive.most_common():
        print(f"  {n / total:6.1%} {n / total * cpu_ms_per_poll:6.3f}  {name}")
    print("\ntop leaf functions (self time):")
    for leaf, n in leaves.most_common(15):
        print(f"  {n / total:6.1%}  {leaf}")
    figures = [
        h.Figure(f"{row['part']}", row["ms_per_poll"], cpu_ms_per_poll, "ms/poll", "all worker CPU")
        for row in breakdown
    ]
    h.write_result(
        "profile_worker",
        figures,
        environment=h.environment(),
        settings=vars(args),
        polls=polls,
        cpu_ms_per_poll=cpu_ms_per_poll,
        samples=total,
        breakdown=breakdown,
        inclusive={k: v / total for k, v in inclusive.most_common()},
        top_leaves=[{"leaf": k, "share": v / total} for k, v in leaves.most_common(30)],
    )
    plot(breakdown, cpu_ms_per_poll)


def plot(breakdown: list[dict[str, Any]], cpu_ms_per_poll: float) -> None:
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(breakdown) + 1.5))
    rows = list(reversed(breakdown))
    ax.barh([r["part"] for r in rows], [r["ms_per_poll"] for r in rows])
    for y, r in enumerate(rows):
        ax.text(r["ms_per_poll"], y, f" {r['share']:.0%}", va="center")
    ax.set(
        title=f"worker CPU per poll by part ({cpu_ms_per_poll:.2f} ms in all; py-spy --gil)",
        xlabel="ms per poll",
    )
    h.save_plot(fig, "profile_worker")


if __name__ == "__main__":
    main()
