"""Rows/s from a JSONL file into Redis, next to a bare Celery ``apply_async`` loop.

Run: ``.venv/bin/python bench/enqueue.py [--rows 100000] [--baseline-tasks N]``

Both run against our own embedded Redis (never the machine's), in the same run:

* baseline: a loop of ``apply_async`` of a no-op task, one message per call — the
  rate a naive producer gets, bound by Celery's per-publish overhead;
* ours: ``clonequeue.submit(Path(file))`` — read, validate every rule, drop repeats,
  record the job documents (Lua, 500 per call) and publish the first messages
  (kombu ``Producer.batch``), in a fresh child process so its peak RSS is its own.
  A file this big is validated in a helper process (producers/parallel.py) while
  the submitting one records and publishes; ``--no-helper`` measures the
  single-process path that stdin, iterables and small files take.

The figures that matter are the ratio (goal >= 4x) and the child's peak RSS
(goal < 250 MB at 1,000,000 rows: ``--rows 1000000``). Redis runs without AOF:
the comparison is about the client's work, and a million 1 KB documents would
otherwise write gigabytes to disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clonequeue.config import Settings, load_settings  # noqa: E402
from clonequeue.local import EmbeddedRedis  # noqa: E402

EMOTIONS = ("happy", "sad", "neutral", "surprised")


def write_rows(path: Path, count: int) -> None:
    """``count`` valid, distinct rows with one production audio each (~400 bytes a line)."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            cid = f"spk-{i:07d}"
            row = {
                "custom_id": cid,
                "clone": {
                    "fileUrl": f"https://voices.example.com/speakers/{cid}.mp3",
                    "language": "English",
                    "soundVersion": "v2",
                },
                "audios": [
                    {
                        "contentText": f"Hello, this is speaker {i}. <#0.5#> Welcome to the show.",
                        "emotion": EMOTIONS[i % len(EMOTIONS)],
                        "speed": 1.0 + (i % 5) / 10,
                    }
                ],
            }
            out.write(json.dumps(row) + "\n")


def settings_for(redis_url: str) -> Settings:
    return load_settings(env_file=None, redis_url=redis_url, namespace="bench")


def baseline(redis_url: str, tasks: int) -> float:
    """Tasks/s of a bare ``apply_async`` loop of a no-op task."""
    from clonequeue.workers.app import create_app

    app = create_app(settings_for(redis_url))

    @app.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop(job_id: str, gen: int) -> None:
        return None

    queue = app.clonequeue_queues.submit
    noop.apply_async(("warm-up", 0), queue=queue)
    start = time.perf_counter()
    for i in range(tasks):
        noop.apply_async((f"job-{i}", 0), queue=queue)
    return tasks / (time.perf_counter() - start)


def ours_in_child(redis_url: str, path: Path, rows: int, helper: bool) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter; its JSON line has rate and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", redis_url, str(path), str(rows), str(int(helper))],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child(redis_url: str, path: Path, rows: int, helper: bool) -> None:
    import clonequeue
    from clonequeue.producers import parallel
    from clonequeue.services import Services

    if not helper:  # validate in this process too, as for stdin, iterables and small files
        parallel.CHILD_MIN_BYTES = 1 << 62

    settings = settings_for(redis_url)
    services = Services(settings)  # connected and imported before the clock starts,
    services.app.connection_for_write().ensure_connection()  # as the baseline's app is
    services.batches  # noqa: B018
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    batch = clonequeue.submit(path, batch="bench", services=services)
    elapsed = time.perf_counter() - start
    report = batch.submission
    assert report is not None
    assert report.new == rows, report
    assert report.rejected == 0, report
    import redis

    client = redis.Redis.from_url(redis_url)
    queued = client.llen(settings.namespace + ".submit")
    assert queued == rows, f"{queued} messages queued for {rows} rows"
    print(
        json.dumps(
            {
                "rows_per_s": rows / elapsed,
                "elapsed_s": elapsed,
                "rss_start_mb": rss_before,
                "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "child_rss_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--baseline-tasks", type=int, default=None, help="default: --rows, at most 100,000"
    )
    parser.add_argument(
        "--no-helper",
        action="store_true",
        help="validate in the submitting process (as for stdin and small files)",
    )
    parser.add_argument("--name", default="enqueue", help="bench/out/NAME.json and .png")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]), args.child[3] == "1")
        return
    tasks = args.baseline_tasks or min(args.rows, 100_000)
    with tempfile.TemporaryDirectory(prefix="clonequeue-bench-") as tmp:
        path = Path(tmp) / "rows.jsonl"
        write_rows(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"input: {args.rows:,} rows, {size_mb:,.1f} MB of JSONL")
        server = EmbeddedRedis().start(appendonly=False)
        try:
            base = baseline(server.url, tasks)
            print(f"baseline: apply_async loop, {tasks:,} no-op tasks: {base:,.0f} tasks/s")
            import redis

            redis.Redis.from_url(server.url).flushall()
            ours = ours_in_child(server.url, path, args.rows, helper=not args.no_helper)
        finally:
            server.close()
    ratio = ours["rows_per_s"] / base
    print(
        f"clonequeue submit: {args.rows:,} rows in {ours['elapsed_s']:.1f} s: "
        f"{ours['rows_per_s']:,.0f} rows/s"
    )
    print(f"ratio: {ratio:.1f}x the baseline (goal >= 4x)")
    helper = (
        f", validating helper process: {ours['child_rss_peak_mb']:.0f} MB"
        if not args.no_helper
        else ""
    )
    print(
        f"peak RSS: {ours['rss_peak_mb']:.0f} MB (at start: {ours['rss_start_mb']:.0f} MB)"
        f"{helper} (goal < 250 MB at 1,000,000 rows)"
    )
    report(args.name, args.rows, base, tasks, ours, helper=not args.no_helper)


def report(
    name: str, rows: int, base: float, tasks: int, ours: dict[str, float], *, helper: bool
) -> None:
    """bench/out/enqueue.json and .png, for run_all's summary."""
    import _harness as h

    peak = max(ours["rss_peak_mb"], ours["child_rss_peak_mb"] if helper else 0.0)
    figures = [
        h.Figure(
            f"rows/s into Redis, {rows:,} rows",
            ours["rows_per_s"],
            base,
            "rows/s",
            f"apply_async loop ({tasks:,} no-op tasks)",
            ">= 4x",
            ours["rows_per_s"] >= 4 * base,
        ),
        h.Figure(
            f"peak RSS, {rows:,} rows (largest process)",
            peak,
            250.0,
            "MB",
            "goal",
            "< 250 MB",
            peak < 250.0,
            note="validating helper process included" if helper else "",
        ),
    ]
    h.write_result(name, figures, environment=h.environment(), result=ours)
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(["apply_async loop", "clonequeue submit"], [base, ours["rows_per_s"]])
    ax.axvline(4 * base, color="red", ls=":", label="goal: 4x the loop")
    ax.set(title=f"{rows:,} rows from JSONL into Redis", xlabel="rows (tasks) per second")
    ax.legend()
    h.save_plot(fig, name)


if __name__ == "__main__":
    main()
