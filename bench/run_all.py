"""Run every benchmark in turn and write bench/out/summary.md (what ``make bench`` runs).

Run: ``.venv/bin/python bench/run_all.py [--quick] [--only NAME,NAME] [--profile]``

Each benchmark runs as its own child process (so a failure or a leaked resource
stays with it), writes ``bench/out/<name>.json`` and ``bench/out/<name>.png``, and
prints its own table. Moderate sizes by default (about 15 minutes on the 2-core
machine); ``--quick`` is a smoke run (about 2 minutes). ``--profile`` also runs
the diagnostics behind the proposals: profile_worker.py (py-spy; needs
``.venv/bin/pip install py-spy``) and proposals.py (about 10 minutes more).

``summary.md`` has one table (figure, value, baseline, ratio, goal, met) built from
the JSON files this run wrote; the README's Performance section quotes it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _harness as h

# name -> (arguments by default, arguments with --quick)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "simulator_throughput": ([], ["--duration-s", "2"]),
    "enqueue": ([], ["--rows", "20000"]),
    "http_client": ([], ["--quick"]),
    "create_connection": ([], ["--quick"]),
    "redis_cost": ([], ["--quick"]),
    "api_calls": ([], ["--quick"]),
    "makespan": ([], ["--quick"]),
    "adaptive_rate": (["--workers", "2"], ["--quick"]),  # 1 worker too: run it on its own
    "worker_pool": ([], ["--quick"]),
    "inflight": (["--steps", "1000,2000,3000,4000"], ["--quick"]),
    "artifacts": ([], ["--quick"]),
    "parquet_memory": (["--rows", "200000"], ["--rows", "20000"]),
    "broker_compare": ([], ["--quick"]),
    "hosts": ([], ["--quick"]),  # root only: network namespaces
}
TITLES = {
    "simulator_throughput": "Simulator throughput",
    "enqueue": "Enqueue (producers)",
    "inflight": "In-flight capacity (60 s tasks)",
    "api_calls": "API calls per job",
    "redis_cost": "Redis cost",
    "makespan": "Makespan under a rate limit",
    "adaptive_rate": "Adaptive rate (API 40→20→40/s)",
    "worker_pool": "Worker pool and task events",
    "http_client": "HTTP client CPU",
    "create_connection": "Create connection policy (keep-alive race)",
    "artifacts": "Artifact downloads",
    "parquet_memory": "Parquet input memory",
    "broker_compare": "Redis vs RabbitMQ: held countdowns",
    "hosts": "Scale-out: 1 vs 2 worker hosts",
    "profile_worker": "Where a poll's CPU goes",
    "proposals": "Candidate changes",
}


def run(name: str, args: list[str]) -> tuple[int, float]:
    print(f"\n##### {name} {' '.join(args)}", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, str(h.ROOT / "bench" / f"{name}.py"), *args])
    return code, time.monotonic() - started


def summary(names: list[str], outcomes: dict[str, tuple[int, float]], since: float) -> str:
    env = h.environment()
    lines = [
        "# Benchmarks",
        "",
        f"`bench/run_all.py` on {env['cpus']} cores, Python {env['python']}. Each ratio is",
        "against a baseline measured in the same run; see each bench file's docstring.",
        "",
        "| bench | figure | value | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        path = h.OUT / f"{name}.json"
        code, _ = outcomes[name]
        if code != 0 or not path.exists() or path.stat().st_mtime < since:
            lines.append(f"| {name} | failed (exit {code}) | | | | | |")
            continue
        for f in json.loads(path.read_text())["figures"]:
            value = f"{h.fmt(f['value'])} {f['unit']}".strip()
            baseline = ""
            if f["baseline"] is not None:
                baseline = f"{h.fmt(f['baseline'])} ({f['baseline_name']})"
            ratio = f"{h.fmt(f['ratio'])}x" if f["ratio"] is not None else ""
            lines.append(
                f"| {TITLES.get(name, name)} | {f['name']} | {value} | {baseline} | {ratio} "
                f"| {f['goal']} | {h.met_text(f['met']) if f['met'] is not None else ''} |"
            )
    lines += ["", "Plots: " + ", ".join(f"`bench/out/{n}.png`" for n in names), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2 minutes")
    parser.add_argument("--only", help="comma-separated bench names")
    parser.add_argument(
        "--profile", action="store_true", help="also run profile_worker.py and proposals.py"
    )
    args = parser.parse_args()
    benches = dict(BENCHES)
    if args.profile:
        benches["profile_worker"] = ([], ["--quick"])
        benches["proposals"] = ([], ["--quick"])
    names = args.only.split(",") if args.only else list(benches)
    unknown = [n for n in names if n not in benches]
    if unknown:
        parser.error(f"unknown bench {unknown}; choose from {', '.join(benches)}")
    since = time.time()
    outcomes = {}
    for name in names:
        default, quick = benches[name]
        outcomes[name] = run(name, quick if args.quick else default)
    h.OUT.mkdir(parents=True, exist_ok=True)
    path: Path = h.OUT / "summary.md"
    path.write_text(summary(names, outcomes, since))
    print(f"\n{path.read_text()}")
    for name, (code, seconds) in outcomes.items():
        print(f"{name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s")
    print(f"total {time.time() - since:.0f} s; wrote {path.relative_to(h.ROOT)}")
    if any(code != 0 for code, _ in outcomes.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
