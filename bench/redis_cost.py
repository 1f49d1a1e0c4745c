"""Redis cost: bytes per job record and per queued message.

Run: ``.venv/bin/python bench/redis_cost.py [--jobs 1000] [--quick]``

Method
    Embedded Redis (free port) and the simulator (clones 15 s, audios 3 s). Jobs
    are a clone plus one production audio, the shape the goal names. Sizes are
    Redis' own ``MEMORY USAGE key SAMPLES 0`` (the value, the key and their
    allocations), averaged over every job:

    1. with no worker running, N jobs are submitted: the job records (pending)
       and the create messages on the ``submit`` list;
    2. a worker starts; while the clones run, the poll messages it holds for their
       countdowns sit in kombu's ``unacked`` hash and ``unacked_index`` zset;
    3. once every job is completed: the completed records (remote ids, modelId,
       URLs, timestamps), and ``used_memory`` growth per job over the whole run
       (records, batch list, due set, events stream entry, ...).

    Baselines: for a record, the job's input row as compact JSON (the data the
    user gave us); for a message, a bare Celery message for the same task name
    and arguments (``app.send_task`` with default options), on the same server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import _harness as h
import redis

GOAL_RECORD_B = 1024


def mean_usage(client: redis.Redis, keys: list[str]) -> float:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return statistics.fmean(int(v or 0) for v in pipe.execute())


def list_usage_per_item(client: redis.Redis, key: str) -> tuple[float, float]:
    """(MEMORY USAGE / LLEN, mean raw length of the items) of a list."""
    count = int(client.llen(key))  # type: ignore[arg-type]
    if not count:
        return float("nan"), float("nan")
    usage = int(client.memory_usage(key, samples=0) or 0)  # type: ignore[arg-type]
    items = client.lrange(key, 0, 199)
    raw = statistics.fmean(len(i) for i in items)  # type: ignore[union-attr]
    return usage / count, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 jobs")
    args = parser.parse_args()
    if args.quick:
        args.jobs = 200

    sim_args = ["--clone-queue-s", "0", "--clone-processing-s", "15"]
    sim_args += ["--audio-queue-s", "0", "--audio-processing-s", "3"]
    rows = h.make_rows(args.jobs, audios=1, prefix="mem")
    data: dict[str, Any] = {}
    with h.workdir("redis-cost") as path, h.start_stack(path, sim_args=sim_args) as stack:
        client = redis.Redis.from_url(stack.redis_url)
        services = h.services_for(stack)
        keys = services.jobs.keys
        queues = services.app.clonequeue_queues
        job_keys = [keys.job(r["custom_id"]) for r in rows]

        # baseline message: a bare Celery message with the same task name and arguments
        bare_url = f"{stack.redis_url.rsplit('/', 1)[0]}/14"
        bare_client = redis.Redis.from_url(bare_url)
        from _bare_worker import make_app

        bare = make_app(bare_url, 1)
        with bare.producer_or_acquire() as producer:
            for r in rows:
                bare.send_task(
                    "clonequeue.submit_clone", (r["custom_id"], 1), queue="bench.noop",
                    producer=producer,
                )  # fmt: skip
        data["bare_message_b"], data["bare_message_raw_b"] = list_usage_per_item(
            bare_client, "bench.noop"
        )
        bare_client.flushdb()

        h.banner(f"{args.jobs} jobs queued, no worker")
        used0 = int(client.info("memory")["used_memory"])
        h.submit(services, rows, "mem")
        data["used_per_job_queued_b"] = (int(client.info("memory")["used_memory"]) - used0) / len(
            rows
        )
        data["record_pending_b"] = mean_usage(client, job_keys)
        data["message_b"], data["message_raw_b"] = list_usage_per_item(client, queues.submit)
        data["input_row_b"] = statistics.fmean(
            len(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode()) for r in rows
        )

        h.banner("a worker runs them; poll messages held for their countdowns")
        stack.start_worker("--concurrency", "50")
        held: list[tuple[int, int, int]] = []  # (messages, hash bytes, index bytes)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            count = int(client.hlen("unacked"))  # type: ignore[arg-type]
            held.append(
                (
                    count,
                    int(client.memory_usage("unacked", samples=0) or 0),  # type: ignore[arg-type]
                    int(client.memory_usage("unacked_index", samples=0) or 0),  # type: ignore[arg-type]
                )
            )
            time.sleep(0.5)
        most = max(held)
        data["held_messages"] = most[0]
        data["held_message_b"] = (most[1] + most[2]) / most[0] if most[0] else float("nan")
        h.wait_finished(services, "mem", timeout_s=300)
        data["record_completed_b"] = mean_usage(client, job_keys)
        data["record_completed_json_b"] = statistics.fmean(
            len(v)
            for v in client.mget(job_keys)
            if v is not None  # type: ignore[union-attr]
        )
        time.sleep(1)
        data["used_per_job_done_b"] = (int(client.info("memory")["used_memory"]) - used0) / len(
            rows
        )
        data["states"] = services.batches.info("mem").counts
        client.close()

    figures = [
        h.Figure(
            "bytes per job record (1 audio, completed)",
            data["record_completed_b"],
            data["input_row_b"],
            "B",
            "input row JSON",
            f"<= {GOAL_RECORD_B} B",
            data["record_completed_b"] <= GOAL_RECORD_B,
            note=f"JSON alone {data['record_completed_json_b']:.0f} B",
        ),
        h.Figure(
            "bytes per job record (1 audio, pending)",
            data["record_pending_b"],
            data["input_row_b"],
            "B",
            "input row JSON",
            f"<= {GOAL_RECORD_B} B",
            data["record_pending_b"] <= GOAL_RECORD_B,
        ),
        h.Figure(
            "bytes per queued create message",
            data["message_b"],
            data["bare_message_b"],
            "B",
            "bare Celery message",
            note=f"raw {data['message_raw_b']:.0f} B vs bare {data['bare_message_raw_b']:.0f} B",
        ),
        h.Figure(
            "bytes per poll message held for its countdown",
            data["held_message_b"],
            data["bare_message_b"],
            "B",
            "bare Celery message",
            note=f"unacked hash + index, {data['held_messages']} held",
        ),
        h.Figure("used_memory per job, queued", data["used_per_job_queued_b"], None, "B"),
        h.Figure("used_memory per job, completed", data["used_per_job_done_b"], None, "B"),
    ]
    h.print_table("Redis cost", figures)
    h.write_result("redis_cost", figures, environment=h.environment(), settings=vars(args), **data)
    plot(data)


def plot(data: dict[str, Any]) -> None:
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [
        "input row (JSON)",
        "record, pending",
        "record, completed",
        "bare Celery message",
        "create message (queued)",
        "poll message (held)",
    ]
    values = [
        data["input_row_b"],
        data["record_pending_b"],
        data["record_completed_b"],
        data["bare_message_b"],
        data["message_b"],
        data["held_message_b"],
    ]
    ax.barh(labels, values, color=["gray", "C0", "C0", "gray", "C1", "C1"])
    ax.axvline(GOAL_RECORD_B, color="red", ls=":", label="1 KB goal (record)")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.0f} B", va="center")
    ax.set(title="Redis bytes per item (MEMORY USAGE)", xlabel="bytes")
    ax.legend()
    h.save_plot(fig, "redis_cost")


if __name__ == "__main__":
    main()
