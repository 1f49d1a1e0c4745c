"""API calls per completed job: creates + polls, against the minimum for the task durations.

Run: ``.venv/bin/python bench/api_calls.py [--jobs 300] [--quick]``

Method
    Embedded Redis, the simulator and one worker with the production cadence
    (first poll 5-5.5 s after the create, then x1.5 per poll up to 10 s). Each job
    is a clone plus one production audio. Durations are spread so that the
    comparison is not tuned to one value: clones queue 5 s and process 30 s, audios
    queue 2 s and process 10 s, each time varied by +-60 % (jitter_ratio 0.6), so
    clones take ~14-56 s and audios ~5-19 s.

    Calls of a step are read from the simulator's ledger: its create plus every
    poll of its task. The minimum for a step whose task takes D seconds (create to
    finish, from ``/_sim/tasks``) at the provider's advised 5-10 s cadence is
    1 create + ceil(D / 10 s) polls (at least 1): a client that knew D could wait
    the full 10 s between polls and poll once at or after the finish. The figure
    is calls per job / minimum per job, summed over all completed jobs; goal <=
    1.2x. Short tasks are where the 5 s first poll costs most, so the ratio is
    also given for steps under 15 s and for steps of 30 s and more.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import _harness as h

GOAL_RATIO = 1.2
POLL_MAX_S = 10.0


def minimum_calls(duration_s: float) -> int:
    return 1 + max(1, math.ceil(duration_s / POLL_MAX_S))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="60 jobs")
    args = parser.parse_args()
    if args.quick:
        args.jobs = 60

    sim_args = [
        "--clone-queue-s", "5", "--clone-processing-s", "30",
        "--audio-queue-s", "2", "--audio-processing-s", "10",
        "--jitter-ratio", "0.6",
    ]  # fmt: skip
    with h.workdir("api-calls") as path, h.start_stack(path, sim_args=sim_args) as stack:
        assert stack.admin is not None
        stack.start_worker("--beat", "--concurrency", "50")
        services = h.services_for(stack)
        h.banner(f"{args.jobs} jobs, clone + 1 audio each")
        h.submit(services, h.make_rows(args.jobs, audios=1, prefix="calls"), "calls")
        h.wait_finished(services, "calls", timeout_s=600)
        docs = h.job_docs(services, "calls")
        ledger = stack.admin.ledger()
        ids = [s["remote_id"] for d in docs for s in h.steps_of(d) if s.get("remote_id")]
        tasks = h.sim_tasks(stack.admin, ids)

    points: list[dict[str, Any]] = []  # one per completed step
    job_calls = job_minimum = 0
    completed = 0
    creates_per_body: dict[str, int] = {}
    for create in ledger["creates"]:
        creates_per_body[create["body_sha256"]] = creates_per_body.get(create["body_sha256"], 0) + 1
    for doc in docs:
        if doc["state"] != "completed":
            continue
        completed += 1
        for step in h.steps_of(doc):
            task = tasks[step["remote_id"]]
            duration = float(task["finished_at"]) - float(task["created_at"])
            calls = creates_per_body.get(task["body_sha256"], 1) + len(
                ledger["polls"].get(task["id"], [])
            )
            minimum = minimum_calls(duration)
            points.append(
                {"kind": task["kind"], "duration_s": duration, "calls": calls, "minimum": minimum}
            )
            job_calls += calls
            job_minimum += minimum

    def ratio_of(selected: list[dict[str, Any]]) -> tuple[float, float]:
        return sum(p["calls"] for p in selected), sum(p["minimum"] for p in selected)

    short = ratio_of([p for p in points if p["duration_s"] < 15])
    long = ratio_of([p for p in points if p["duration_s"] >= 30])
    figures = [
        h.Figure(
            "API calls per completed job (clone + 1 audio)",
            job_calls / completed,
            job_minimum / completed,
            "calls",
            "minimum at 5-10 s",
            f"<= {GOAL_RATIO}x",
            job_calls <= GOAL_RATIO * job_minimum,
            note=f"{completed} of {len(docs)} jobs completed",
        ),
        h.Figure(
            "calls per step, tasks < 15 s",
            short[0] / max(1, sum(1 for p in points if p["duration_s"] < 15)),
            short[1] / max(1, sum(1 for p in points if p["duration_s"] < 15)),
            "calls",
            "minimum",
        ),
        h.Figure(
            "calls per step, tasks >= 30 s",
            long[0] / max(1, sum(1 for p in points if p["duration_s"] >= 30)),
            long[1] / max(1, sum(1 for p in points if p["duration_s"] >= 30)),
            "calls",
            "minimum",
        ),
    ]
    h.print_table("API calls per job", figures)
    h.write_result(
        "api_calls",
        figures,
        environment=h.environment(),
        settings={**vars(args), "sim_args": sim_args},
        points=points,
    )
    plot(points)


def plot(points: list[dict[str, Any]]) -> None:
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for kind, marker in (("clone", "o"), ("audio", "s")):
        selected = [p for p in points if p["kind"] == kind]
        ax.scatter(
            [p["duration_s"] for p in selected],
            [p["calls"] for p in selected],
            s=12,
            marker=marker,
            alpha=0.5,
            label=f"ours ({kind})",
        )
    longest = max((p["duration_s"] for p in points), default=60.0)
    xs = [x / 10 for x in range(1, int(longest * 10) + 10)]
    ax.step(xs, [minimum_calls(x) for x in xs], where="post", color="black", label="minimum")
    ax.step(
        xs,
        [GOAL_RATIO * minimum_calls(x) for x in xs],
        where="post",
        color="red",
        ls=":",
        label=f"{GOAL_RATIO}x minimum",
    )
    ax.set(title="API calls per step vs remote task duration", xlabel="task duration (s)")
    ax.set_ylabel("create + polls")
    ax.legend()
    h.save_plot(fig, "api_calls")


if __name__ == "__main__":
    main()
