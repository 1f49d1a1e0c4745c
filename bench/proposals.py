"""Measured candidates for cutting the worker's CPU per poll, before anyone changes the core.

Run: ``.venv/bin/python bench/proposals.py [--jobs 1500] [--rounds 1] [--quick]``

Method
    Embedded Redis and the simulator (clones 0 + 40 s, jitter 0.25). The same
    in-flight load as bench/worker_pool.py runs once per variant, one worker
    (threads, -c 50) at a time, each started through ``_patched_worker.py`` with a
    different set of in-process patches (nothing under clonequeue/ changes):

    * as is;
    * kombu_client: one redis.Redis object per kombu channel instead of one per call;
    * no_events: Celery task events off;
    * quiet_logs: Celery's per-task "received"/"succeeded" INFO lines off;
    * all three.

    CPU per poll is measured over each steady window as in bench/inflight.py.

    Then the floor: the worker stops, its jobs stay running (remote tasks of 600 s),
    and this process calls ``steps.run_poll`` on them in a loop, one thread, with
    the real context: rate limiter, GET, record_poll Lua; once with a dispatcher
    that only remembers the next step (what a poller reading the ``due`` set
    would do: no message per poll), once with the real Celery dispatcher (the
    publish of the next countdown message included). ``time.thread_time`` per
    call. The difference between a worker's CPU per poll and this floor is what
    Celery's message round trip per poll costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from typing import Any

import _harness as h

from clonequeue.local.processes import ManagedProcess

PATCHED_WORKER = h.ROOT / "bench" / "_patched_worker.py"
VARIANTS = {
    "as is": "",
    "kombu_client": "kombu_client",
    "no_events": "no_events",
    "quiet_logs": "quiet_logs",
    "all three": "kombu_client,no_events,quiet_logs",
}


def start_patched(stack: Any, name: str, patches: str) -> ManagedProcess:
    argv = [sys.executable, str(PATCHED_WORKER), "worker", f"--hostname={name}@%h"]
    argv += ["--concurrency", "50"]
    if "no_events" in patches:
        argv.append("--no-events")
    process = ManagedProcess(
        argv,
        log_path=stack.workdir / f"{name}.log",
        env={**stack.env(), "BENCH_PATCHES": patches},
        name=name,
    )
    process.start()
    stack.workers.append(process)
    process.wait_ready(line="ready.", timeout_s=60)
    return process


def run_variant(stack: Any, services: Any, label: str, patches: str, jobs: int) -> dict[str, Any]:
    h.banner(f"variant: {label}")
    name = label.replace(" ", "_")
    start_patched(stack, name, patches)
    with h.Meter({**h.worker_pids(stack), **h.system_pids(stack)}) as meter:
        stats = h.run_batch(
            stack,
            services,
            meter,
            h.make_rows(jobs, prefix=f"{name}-{time.time_ns()}"),
            f"v-{name}-{time.time_ns()}",
            timeout_s=400,
            workers=[name],
        )
    stack.stop_workers()
    print(
        f"{label}: {stats.worker_cpu_ms_per_poll:.2f} ms CPU/poll, "
        f"{stats.polls_per_s:.0f} polls/s, window {stats.window_s:.0f} s",
        flush=True,
    )
    return {"variant": label, "cpu_ms_per_poll": stats.worker_cpu_ms_per_poll}


class Remember:
    """A dispatcher that keeps the next step of each poll; sends it on only with ``real``."""

    def __init__(self, real: Any = None) -> None:
        self.last: Any = None
        self.real = real

    def create(self, step: Any, *, countdown: float | None = None) -> None:
        self.last = step

    def poll(self, step: Any, *, countdown: float | None = None) -> None:
        self.last = step
        if self.real is not None:
            self.real.poll(step, countdown=countdown)

    def queue_depths(self) -> dict[str, int]:
        return {}


def floor(stack: Any, services: Any, jobs: int, polls: int) -> dict[str, float]:
    """CPU per ``steps.run_poll`` call in one thread, without and with the publish."""
    from clonequeue.dispatch.dispatcher import CeleryDispatcher
    from clonequeue.store.jobs import Dispatch
    from clonequeue.workers import steps
    from clonequeue.workers.context import WorkerContext

    assert stack.admin is not None
    h.banner(f"floor: steps.run_poll in this process, {jobs} running jobs")
    stack.admin.configure(clone_processing_s=600, jitter_ratio=0.0)
    batch = f"floor-{time.time_ns()}"
    start_patched(stack, "creator", "")
    h.submit(services, h.make_rows(jobs, prefix=batch), batch)
    deadline = time.monotonic() + 120
    while services.batches.info(batch).counts.get("cloning", 0) < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError("the floor's jobs were not all created")
        time.sleep(0.5)
    stack.stop_workers()
    docs = h.job_docs(services, batch)
    steps_now = [Dispatch(d["id"], "c", d["clone"]["gen"], d["clone"]["remote_id"]) for d in docs]
    app = services.app
    results = {}
    real = CeleryDispatcher(app, app.clonequeue_queues)
    for label, remember in (
        ("run_poll, no message (due-set poller)", Remember()),
        ("run_poll + publish next countdown", Remember(real)),
    ):
        ctx = WorkerContext.build(services.settings, remember)
        count = 0
        c0 = time.thread_time()
        while count < polls:
            for i, step in enumerate(steps_now):
                steps.run_poll(ctx, step)
                steps_now[i] = remember.last
                count += 1
        results[label] = (time.thread_time() - c0) * 1000 / count
        ctx.client.close()
        print(f"{label}: {results[label]:.3f} ms CPU per poll", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--duration-s", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--floor-jobs", type=int, default=200)
    parser.add_argument("--floor-polls", type=int, default=3000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.duration_s, args.floor_jobs, args.floor_polls = 300, 20.0, 50, 500

    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", str(args.duration_s)]
    sim_args += ["--jitter-ratio", "0.25"]
    runs: list[dict[str, Any]] = []
    with h.workdir("proposals") as path, h.start_stack(path, sim_args=sim_args) as stack:
        services = h.services_for(stack)
        for _ in range(args.rounds):
            for label, patches in VARIANTS.items():
                runs.append(run_variant(stack, services, label, patches, args.jobs))
        floors = floor(stack, services, args.floor_jobs, args.floor_polls)

    per_variant = {
        label: statistics.median(r["cpu_ms_per_poll"] for r in runs if r["variant"] == label)
        for label in VARIANTS
    }
    base = per_variant["as is"]
    figures = [
        h.Figure(
            f"worker CPU per poll: {label}",
            value,
            base,
            "ms",
            "as is",
            spread=h.spread([r["cpu_ms_per_poll"] for r in runs if r["variant"] == label]),
        )
        for label, value in per_variant.items()
    ]
    figures += [
        h.Figure(f"CPU per poll, {label}", value, base, "ms", "worker as is")
        for label, value in floors.items()
    ]
    h.print_table("candidate changes: worker CPU per poll", figures)
    h.write_result(
        "proposals",
        figures,
        environment=h.environment(),
        settings={**vars(args), "sim_args": sim_args},
        runs=runs,
        floor=floors,
        variants={k: asdict(f) for k, f in zip(per_variant, figures, strict=False)},
    )
    plot(per_variant, floors)


def plot(per_variant: dict[str, float], floors: dict[str, float]) -> None:
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [f"worker: {k}" for k in per_variant] + list(floors)
    values = list(per_variant.values()) + list(floors.values())
    ax.barh(list(reversed(labels)), list(reversed(values)))
    for y, v in enumerate(reversed(values)):
        ax.text(v, y, f" {v:.2f}", va="center")
    ax.set(title="CPU per poll: the worker with candidate changes, and the floor", xlabel="ms")
    h.save_plot(fig, "proposals")


if __name__ == "__main__":
    main()
