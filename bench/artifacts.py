"""Artifact downloads from the simulator: our path vs a plain urllib3 loop; RSS at 100 MB.

Run: ``.venv/bin/python bench/artifacts.py [--files 30] [--mb 5] [--big-mb 100] [--quick]``

Method
    The simulator runs as its own process and serves one completed task's WAV of
    ``--mb`` MB. Both clients fetch it ``--files`` times, one after another in one
    thread, into files in a local folder, taking turns over ``--rounds`` rounds:

    * plain urllib3 (the baseline): ``PoolManager.request(preload_content=False)``,
      1 MiB chunks written to a file;
    * ours: ``clonequeue.outputs.artifacts.download`` into a ``file://`` fsspec store:
      the same stream plus SHA-256, the length and ``Repr-Digest`` checks, a
      ``.part`` file renamed into place. Every round writes new files (as in use).

    Peak RSS: a child process downloads two ``--big-mb`` files with ours and reports
    its ``ru_maxrss``; the baseline is the same child importing the same modules and
    downloading nothing. Goal: the download adds < 50 MB whatever the file size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness as h
import urllib3

CHILD = """
import resource, sys, tempfile, urllib3
from clonequeue.outputs import artifacts
url, count = sys.argv[1], int(sys.argv[2])
http = urllib3.PoolManager()
with tempfile.TemporaryDirectory() as tmp:
    for i in range(count):
        artifacts.download(http, url, f"file://{tmp}/f{i}.wav", timeout_s=60)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def completed_file_url(admin: h.SimulatorAdmin) -> str:
    task_id = h.simulator_task(admin)
    http = urllib3.PoolManager()
    for _ in range(100):
        record = json.loads(http.request("GET", f"{admin.base_url}/_sim/tasks/{task_id}").data)
        if record["status"] == "completed":
            return str(record["public"]["audioUrl"])
        time.sleep(0.1)
    raise RuntimeError("the simulator's task did not complete")


def plain_loop(url: str, folder: Path, files: int) -> float:
    http = urllib3.PoolManager()
    started = time.perf_counter()
    for i in range(files):
        response = http.request("GET", url, preload_content=False)
        with (folder / f"plain{i}.wav").open("wb") as sink:
            for chunk in response.stream(1 << 20):
                sink.write(chunk)
        response.release_conn()
    return time.perf_counter() - started


def ours(url: str, folder: Path, files: int) -> float:
    from clonequeue.outputs import artifacts

    http = urllib3.PoolManager()
    started = time.perf_counter()
    for i in range(files):
        artifacts.download(http, url, f"file://{folder}/ours{i}.wav", timeout_s=60)
    return time.perf_counter() - started


def child_rss(url: str, count: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(count)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--big-mb", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds, args.big_mb = 10, 2, 50.0
    size = int(args.mb * 1_000_000)
    with h.workdir("artifacts") as path, h.LocalStack(path, namespace="bench") as stack:
        admin = stack.start_simulator("--balance", "1000000")
        admin.configure(clone_queue_s=0, clone_processing_s=0, file_bytes=size)
        url = completed_file_url(admin)
        plain_s, ours_s = [], []
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            plain_loop(url, folder, 2), ours(url, folder, 2)  # warm-up
            for _ in range(args.rounds):
                for run, times in ((plain_loop, plain_s), (ours, ours_s)):
                    for old in folder.iterdir():  # every round writes new files, as in use
                        old.unlink()
                    times.append(run(url, folder, args.files))
        admin.configure(file_bytes=int(args.big_mb * 1_000_000))
        big_rss = child_rss(url, 2)
        idle_rss = child_rss(url, 0)
    mb = size * args.files / 1e6
    plain_mbs = [mb / s for s in plain_s]
    ours_mbs = [mb / s for s in ours_s]
    figures = [
        h.Figure(f"MB/s, {args.files} files of {args.mb:g} MB", statistics.median(ours_mbs),
                 statistics.median(plain_mbs), "MB/s", "plain urllib3 loop", goal=">= 0.8x",
                 met=statistics.median(ours_mbs) >= 0.8 * statistics.median(plain_mbs),
                 spread=h.spread(ours_mbs)),
        h.Figure(f"files/s, {args.mb:g} MB each", statistics.median(ours_mbs) / args.mb,
                 statistics.median(plain_mbs) / args.mb, "files/s", "plain urllib3 loop"),
        h.Figure(f"peak RSS, two {args.big_mb:g} MB files", big_rss / 1e6, idle_rss / 1e6, "MB",
                 "same process, no download", goal="< +50 MB",
                 met=big_rss - idle_rss < 50e6),
    ]  # fmt: skip
    h.print_table("Artifact downloads from the simulator (median over rounds)", figures)
    h.write_result(
        "artifacts", figures, plain_s=plain_s, ours_s=ours_s, environment=h.environment()
    )


if __name__ == "__main__":
    main()
