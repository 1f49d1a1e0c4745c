"""``clonequeue demo``: the whole pipeline on this machine, from rows to results.

Redis (an embedded one of its own, unless CLONEQUEUE_REDIS_URL is set, in the
environment or .env, and answers: a Redis that merely listens on 6379 is never
written to unasked), the
API simulator with a few faults switched on, one worker with the watchdog, and the
bundled sample batch. Ends with a results table. Everything it starts it stops, and
it writes only under its own namespace, which it deletes again.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from importlib import resources
from pathlib import Path

from dotenv import dotenv_values
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clonequeue.config import load_settings
from clonequeue.local.stack import SIMULATOR_TOKEN, LocalStack
from clonequeue.producers.api import submit_specs
from clonequeue.producers.reading import read_jsonl
from clonequeue.producers.rows import RowError
from clonequeue.services import Services
from clonequeue.store.batches import BatchInfo
from clonequeue.store.records import result_record

# Tasks that end before the first poll (5 s): the demo shows every path (a rejected
# row, a failed voice, 5xx survived, artifacts) in ~15 s rather than waiting out the
# poll cadence (42 s with 6-7 s tasks).
SIMULATOR_KNOBS = (
    "--clone-queue-s",
    "0.5",
    "--clone-processing-s",
    "3",
    "--audio-queue-s",
    "0.5",
    "--audio-processing-s",
    "2.5",
    "--jitter-ratio",
    "0.3",
    "--error-5xx-rate",
    "0.05",
    "--seed",
    "7",
)
STATE_STYLE = {"completed": "green", "failed": "red", "unknown": "yellow", "cancelled": "dim"}


def sample_batch() -> Path:
    return Path(str(resources.files("clonequeue.demo") / "sample_batch.jsonl"))


def explicit_redis_url(env_file: Path = Path(".env")) -> str | None:
    """CLONEQUEUE_REDIS_URL as the user set it (environment first, then .env), or None."""
    url = os.environ.get("CLONEQUEUE_REDIS_URL")
    if url is None and env_file.is_file():
        url = dotenv_values(env_file).get("CLONEQUEUE_REDIS_URL")
    return url or None


def run_demo(workdir: Path, *, jobs_file: Path | None = None, timeout_s: float = 110.0) -> int:
    """Run the demo; returns the exit code (0: every job finished and none was paid twice)."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    jobs_file = jobs_file or sample_batch()
    namespace = f"demo-{secrets.token_hex(3)}"
    for old_log in workdir.glob("*.log"):
        old_log.unlink()
    console.rule("[bold]clonequeue demo")
    with LocalStack(workdir, namespace=namespace) as stack:
        requested = explicit_redis_url()
        redis_url = stack.start_redis(requested, embedded=requested is None)
        if stack.redis_server is None:
            origin = "yours, from CLONEQUEUE_REDIS_URL"
        elif requested is not None:
            origin = f"embedded, AOF on: CLONEQUEUE_REDIS_URL={requested} did not answer"
        else:
            origin = "embedded, AOF on; set CLONEQUEUE_REDIS_URL to use yours"
        console.print(f"Redis      {redis_url} ({origin}; keys under '{namespace}:')")
        admin = stack.start_simulator(*SIMULATOR_KNOBS)
        console.print(
            f"Simulator  {stack.simulator_url} (the JimmyAI API's stand-in; 5% of "
            "calls answer 5xx, one voice is too short)"
        )
        voices = (
            os.environ.get("CLONEQUEUE_ARTIFACTS_URL") or (workdir / "voices").resolve().as_uri()
        )
        stack.start_worker(
            "--beat",
            "--concurrency",
            "20",
            # A poll that met a 5xx comes again at the cadence's slow end: 5 s, not 10.
            env={"CLONEQUEUE_ARTIFACTS_URL": voices, "CLONEQUEUE_POLL_INTERVAL_MAX_S": "5"},
        )
        console.print(f"Worker     1 process, 20 threads, watchdog on; logs in {workdir.resolve()}")
        console.print(f"Artifacts  each finished audio and subtitle file copied to {voices}")
        settings = load_settings(
            env_file=None,
            redis_url=redis_url,
            namespace=namespace,
            api_base_url=stack.simulator_url,
            api_token=SIMULATOR_TOKEN,
        )
        services = Services(settings)
        try:
            code = _submit_and_follow(console, services, jobs_file, timeout_s)
            summary = admin.summary()
            console.print(
                f"Simulator ledger: {summary['clones_total']} clones and "
                f"{summary['audios_total']} audios created, {summary['duplicate_creates']} "
                f"created twice, {summary['polls_total']} polls, {summary['http_5xx']} "
                "server errors survived."
            )
            if summary["duplicate_creates"]:
                code = 1
        finally:
            stack.stop_workers()
            if stack.redis_server is None:
                _delete_namespace(services, namespace)
    return code


def _submit_and_follow(
    console: Console, services: Services, jobs_file: Path, timeout_s: float
) -> int:
    console.print(f"\nSubmitting {jobs_file.name} …")

    def on_error(error: RowError) -> None:
        console.print(f"  [red]rejected[/red] {error}")

    with jobs_file.open("rb") as stream:
        result = submit_specs(
            read_jsonl(stream),
            services=services,
            batch="demo",
            on_error=on_error,
        )
    report = result.report
    assert report is not None
    console.print(
        f"  accepted {result.accepted} jobs into batch '{result.batch_id}' "
        f"(estimate: {report.estimate.preview_chars} preview + "
        f"{report.estimate.production_chars} production characters)\n"
    )
    info = _follow(console, services, result.batch_id, timeout_s)
    console.print()
    _results_table(console, services, result.batch_id)
    if not info.is_finished:
        console.print(f"[red]not finished after {timeout_s:.0f} s[/red]")
        return 1
    return 0


def _follow(console: Console, services: Services, batch: str, timeout_s: float) -> BatchInfo:
    progress = Progress(
        TextColumn("[bold]jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    info = services.batches.info(batch)
    assert info is not None
    task = progress.add_task("jobs", total=info.total)
    deadline = time.monotonic() + timeout_s
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            info = services.batches.info(batch)
            assert info is not None
            progress.update(task, completed=info.total - info.open_jobs)
            live.update(Group(progress, _counts_line(info)))
            if info.is_finished or time.monotonic() > deadline:
                return info
            time.sleep(0.5)


def _counts_line(info: BatchInfo) -> str:
    parts = []
    for state, count in info.counts.items():
        if count:
            style = STATE_STYLE.get(state, "cyan")
            parts.append(f"[{style}]{state} {count}[/{style}]")
    return "  " + "  ".join(parts)


def _results_table(console: Console, services: Services, batch: str) -> None:
    table = Table(title="Results", show_lines=False)
    for column in ("custom_id", "status", "audios"):
        table.add_column(column, no_wrap=True)
    # Ids are long and alike: their start is enough here (`clonequeue results` has them
    # whole), which leaves the width to the error, the one column worth reading.
    for column in ("modelId", "preview audio"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("error", min_width=30, ratio=1)
    for doc in services.batches.docs(batch):
        record = result_record(doc)
        audios = record["audios"]
        done = sum(1 for a in audios if a["status"] == "completed")
        style = STATE_STYLE.get(record["status"], "cyan")
        error = (record["error"] or {}).get("msg", "")
        table.add_row(
            record["custom_id"],
            f"[{style}]{record['status']}[/{style}]",
            f"{done}/{len(audios)}",
            record["modelId"] or "",
            _file_name(record["audioUrl"]),
            error,
        )
    console.print(table)


def _file_name(url: str | None) -> str:
    return url.rsplit("/", 1)[-1] if url else ""


def _delete_namespace(services: Services, namespace: str) -> None:
    """Remove every key the demo wrote into a Redis it did not start."""
    client = services.redis
    patterns = (f"{namespace}:*", f"{namespace}.*", f"_kombu.binding*.{namespace}.*")
    for pattern in patterns:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    # kombu >= 5.7 keeps one set of binding deadlines for every app on the server
    deadlines = "_kombu.binding_deadlines"
    ours = [str(m) for m in client.zrange(deadlines, 0, -1) if namespace in str(m)]
    if ours:
        client.zrem(deadlines, *ours)
