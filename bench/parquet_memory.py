"""Peak RSS reading and validating 1,000,000 rows of Parquet, beside the same rows as JSONL.

Run: ``.venv/bin/python bench/parquet_memory.py [--rows 1000000]``

The same jobs (one production audio each, as in bench/enqueue.py) are written as
JSONL and as Parquet — once in row groups of 100,000 rows, once as one row group
of every row (what ``pyarrow.parquet.write_table`` makes by default up to 1 Mi
rows). Each file is then read and validated by ``clonequeue estimate``'s engine
(``Submission(..., services=None)``: every rule checked, repeats found, nothing
sent) in a fresh interpreter, in this process (no helper), so its peak RSS is its
own. The baseline is the JSONL reader, measured in the same run. Goals: Parquet's
peak within 1.5x of JSONL's (pyarrow brings an allocator pool and decoded pages of
its own, a fixed cost), and flat: the same peak at a tenth of the rows (<= 1.1x).
Peak RSS is VmHWM, measured in the child.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EMOTIONS = ("happy", "sad", "neutral", "surprised")
CHUNK = 100_000


def jobs(count: int) -> Iterator[dict[str, Any]]:
    """The bench's jobs in the columnar layout (the CSV columns, ``audios`` a list)."""
    for i in range(count):
        cid = f"spk-{i:07d}"
        yield {
            "custom_id": cid,
            "fileUrl": f"https://voices.example.com/speakers/{cid}.mp3",
            "language": "English",
            "soundVersion": "v2",
            "audios": [
                {
                    "contentText": f"Hello, this is speaker {i}. <#0.5#> Welcome to the show.",
                    "emotion": EMOTIONS[i % len(EMOTIONS)],
                    "speed": 1.0 + (i % 5) / 10,
                }
            ],
        }


def write_jsonl(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for job in jobs(count):
            clone = {k: job[k] for k in ("fileUrl", "language", "soundVersion")}
            row = {"custom_id": job["custom_id"], "clone": clone, "audios": job["audios"]}
            out.write(json.dumps(row) + "\n")


def write_parquet(path: Path, count: int, row_group: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = jobs(count)
    tables = []
    while True:
        chunk = [job for _, job in zip(range(CHUNK), source, strict=False)]
        if not chunk:
            break
        tables.append(pa.Table.from_pylist(chunk))
    table = pa.concat_tables(tables)
    pq.write_table(table, path, row_group_size=row_group, compression="zstd")
    assert pq.ParquetFile(path).num_row_groups == -(-count // row_group)


def measure(path: Path, rows: int) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter; its last line is a JSON object."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that over from
    the parent across fork and exec, so a child would report the bench parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def child(path: Path, rows: int) -> None:
    import pyarrow.parquet  # noqa: F401 - imported before the start figure, as the others are

    from clonequeue.producers.sources import InputFile, IterableSource
    from clonequeue.producers.submission import Submission

    warm = {"custom_id": "warm-up", "clone": {"fileUrl": "https://v.example.com/w.mp3"}}
    Submission(IterableSource([warm]), services=None, parallel=False).run()  # every import
    start_mb = peak_rss_mb()
    started = time.perf_counter()
    report = Submission(InputFile.from_arg(str(path)), services=None, parallel=False).run()
    elapsed = time.perf_counter() - started
    assert (report.rows, report.rejected) == (rows, 0), report
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "rss_start_mb": start_mb,
                "rss_peak_mb": peak_mb,
                "elapsed_s": elapsed,
                "rows_per_s": rows / elapsed,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--name", default="parquet_memory", help="bench/out/NAME.json and .png")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return
    rows, small = args.rows, max(args.rows // 10, 1)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="clonequeue-bench-") as tmp:
        files = {
            "jsonl": (Path(tmp) / "rows.jsonl", rows),
            "parquet": (Path(tmp) / "rows.parquet", rows),
            "parquet, one row group": (Path(tmp) / "one-group.parquet", rows),
            f"parquet, {small:,} rows": (Path(tmp) / "small.parquet", small),
        }
        write_jsonl(files["jsonl"][0], rows)
        write_parquet(files["parquet"][0], rows, CHUNK)
        write_parquet(files["parquet, one row group"][0], rows, rows)
        write_parquet(files[f"parquet, {small:,} rows"][0], small, CHUNK)
        for label, (path, count) in files.items():
            size_mb = path.stat().st_size / 1e6
            result = measure(path, count)
            result["file_mb"] = size_mb
            results[label] = result
            print(
                f"{label}: {count:,} rows, {size_mb:,.1f} MB file: peak RSS "
                f"{result['rss_peak_mb']:.1f} MB (after imports {result['rss_start_mb']:.1f} MB), "
                f"{result['rows_per_s']:,.0f} rows/s"
            )
    base = results["jsonl"]["rss_peak_mb"]
    for label in ("parquet", "parquet, one row group"):
        peak = results[label]["rss_peak_mb"]
        print(f"ratio {label} / jsonl peak RSS: {peak / base:.2f}x (goal <= 1.5x)")
    flat = results["parquet"]["rss_peak_mb"] / results[f"parquet, {small:,} rows"]["rss_peak_mb"]
    print(f"ratio parquet {rows:,} / {small:,} rows peak RSS: {flat:.2f}x (goal <= 1.1x)")
    report(args.name, rows, small, results)


def report(name: str, rows: int, small: int, results: dict[str, dict[str, float]]) -> None:
    """bench/out/parquet_memory.json and .png, for run_all's summary."""
    import _harness as h

    base = results["jsonl"]["rss_peak_mb"]
    figures = []
    for label in ("parquet", "parquet, one row group"):
        peak = results[label]["rss_peak_mb"]
        groups = "row groups of 100,000" if label == "parquet" else "one row group"
        figures.append(
            h.Figure(
                f"peak RSS validating {rows:,} rows of Parquet ({groups})",
                peak,
                base,
                "MB",
                f"the same rows as JSONL ({results['jsonl']['rows_per_s']:,.0f} rows/s)",
                "<= 1.5x",
                peak <= 1.5 * base,
            )
        )
    figures.append(
        h.Figure(
            f"peak RSS, Parquet: {rows:,} rows against {small:,}",
            results["parquet"]["rss_peak_mb"],
            results[f"parquet, {small:,} rows"]["rss_peak_mb"],
            "MB",
            f"{small:,} rows",
            "<= 1.1x",
            results["parquet"]["rss_peak_mb"]
            <= 1.1 * results[f"parquet, {small:,} rows"]["rss_peak_mb"],
        )
    )
    figures.append(
        h.Figure(
            f"rows/s validating Parquet, {rows:,} rows",
            results["parquet"]["rows_per_s"],
            results["jsonl"]["rows_per_s"],
            "rows/s",
            "JSONL",
        )
    )
    h.write_result(name, figures, environment=h.environment(), result=results)
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = list(results)
    ax.barh(labels, [results[k]["rss_peak_mb"] for k in labels])
    ax.set(title=f"peak RSS reading and validating {rows:,} rows", xlabel="MB")
    h.save_plot(fig, name)


if __name__ == "__main__":
    main()
