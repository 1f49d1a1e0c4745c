"""Producers against real workers and the simulator: bad rows never stop good ones,
CSV in and out, re-submission, retry and cancel semantics."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue.local.stack import SimulatorAdmin
from clonequeue.producers.export import write_csv
from clonequeue.wording import plural
from tests.e2e.system import System, make_rows

pytestmark = pytest.mark.e2e


def run_cli(system: System, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clonequeue", *args],
        env=system.stack.env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def creates_by_job(simulator: SimulatorAdmin) -> Counter[tuple[str, str]]:
    """(kind, job id) → creates in the ledger; make_rows puts the job id in every body."""
    counts: Counter[tuple[str, str]] = Counter()
    for create in simulator.ledger()["creates"]:
        body = create["body"]
        text = body.get("fileUrl") or body.get("contentText", "")
        job = next(w for w in text.replace("/", " ").replace(".", " ").split() if "-0" in w)
        counts[(create["kind"], job)] += 1
    return counts


def test_mixed_file_rejects_bad_rows_and_the_good_ones_complete(
    system: System, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    good = make_rows(6, audios=1, prefix="mix")
    bad = [
        {"custom_id": "bad-url", "clone": {"fileUrl": "https://v.example.com/notes.txt"}},
        {"clone": {"fileUrl": "https://v.example.com/no-id.mp3"}},
        {**good[0], "audios": [{"contentText": "Other words"}]},  # mix-00000 again, changed
    ]
    lines = [json.dumps(r) for r in good[:3]] + [json.dumps(bad[0]), "{oops", ""]
    lines += [json.dumps(r) for r in good[3:]] + [json.dumps(bad[1]), json.dumps(bad[2])]
    jobs_file = tmp_path / "mixed.jsonl"
    jobs_file.write_text("\n".join(lines) + "\n")
    system.start_worker()

    submitted = run_cli(system, tmp_path, "submit", str(jobs_file), "--batch", "mixed")
    assert submitted.returncode == 3, submitted.stderr
    assert submitted.stdout.strip().splitlines()[-1] == "mixed"
    errors = [
        json.loads(line)
        for line in (tmp_path / "mixed.jsonl.errors.jsonl").read_text().splitlines()
    ]
    assert [(e["line"], e["custom_id"]) for e in errors] == [  # blank line 6 is skipped
        (4, "bad-url"),
        (5, None),
        (10, None),
        (11, "mix-00000"),
    ]
    assert errors[0]["errors"] == [
        "clone.fileUrl: extension .txt is not an audio or video type "
        "(allowed: aac, m4a, mp3, ogg, wav, avi, flv, mkv, mov, mp4)"
    ]
    assert errors[3]["errors"] == [
        "custom_id: already used by line 1 with different content; give each job its own custom_id"
    ]

    watched = run_cli(system, tmp_path, "status", "mixed", "--watch", "--interval", "0.5")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip() == "mixed: 6 jobs: completed 6"
    report = system.audit("mixed")
    assert report.ok, report.problems()
    assert simulator.summary()["creates_total"] == 12  # 6 clones + 6 audios, nothing else


def test_csv_in_results_out_and_resubmission_sends_nothing(
    system: System, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    rows = make_rows(4, audios=2, prefix="csv")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["custom_id", "fileUrl", "language", "audio_contentText", "audio_speed"])
    for r in rows:
        for audio in r["audios"]:
            writer.writerow(
                [r["custom_id"], r["clone"]["fileUrl"], "English", audio["contentText"], "1.1"]
            )
    path = tmp_path / "jobs.csv"
    path.write_text(text.getvalue())
    system.start_worker()

    batch = clonequeue.submit(path, batch="csv", services=system.services)
    assert batch.submission is not None
    assert (batch.submission.rows, batch.submission.new) == (4, 4)
    seen: list[int] = []
    status = batch.wait(
        timeout=60, poll_interval=0.25, on_progress=lambda s: seen.append(s.finished_jobs)
    )
    assert status.counts["completed"] == 4
    assert seen[-1] == 4
    out = io.StringIO()
    write_csv(batch.results(), out)
    result_rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["custom_id"], r["audio_custom_id"]) for r in result_rows] == [
        (r["custom_id"], f"{r['custom_id']}-{k}") for r in rows for k in (1, 2)
    ]
    assert all(r["audio_status"] == "completed" and r["audio_audioUrl"] for r in result_rows)
    keys = system.services.jobs.keys
    ttl = system.services.redis.ttl(keys.job(rows[0]["custom_id"]))
    assert 0 < ttl <= system.settings.retention_s  # finished records expire (default 7 days)

    before = simulator.summary()["creates_total"]
    again = clonequeue.submit(path, batch="csv-again", services=system.services).submission
    assert again is not None
    assert (again.new, again.already_submitted, again.rejected) == (0, 4, 0)
    assert dict(again.already_in) == {"csv": 4}
    time.sleep(1.0)
    assert simulator.summary()["creates_total"] == before == 4 + 8


def test_retry_failed_queues_only_failed_work_with_a_new_attempt(
    system: System, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    simulator.configure(failure_rate=0.35, seed=5)
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(16, audios=1, prefix="rt"), batch="rt", services=system.services
    )
    first = batch.wait(timeout=60, poll_interval=0.25)
    failed = {r["custom_id"] for r in batch.errors()}
    assert first.counts["failed"] == len(failed) > 0
    completed_before = {r["custom_id"] for r in batch.results() if r["status"] == "completed"}
    creates_before = creates_by_job(simulator)

    simulator.configure(failure_rate=0.0)
    retried = run_cli(system, tmp_path, "retry", "rt", "--failed")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"failed: {plural(len(failed), 'job')} queued again")
    final = batch.wait(timeout=60, poll_interval=0.25)
    assert final.counts["completed"] == 16
    records = {r["custom_id"]: r for r in batch.results()}
    assert {cid for cid, r in records.items() if r["retries"] == 1} == failed
    assert all(records[cid]["retries"] == 0 for cid in completed_before)
    creates_after = creates_by_job(simulator)
    for cid in completed_before:  # completed work was never sent again
        for kind in ("clone", "audio"):
            assert creates_after[(kind, cid)] == creates_before[(kind, cid)] == 1
    for cid in failed:  # the failed step was sent once more; the step before it was not
        assert creates_after[("clone", cid)] + creates_after[("audio", cid)] == 3, cid


def test_cancel_stops_unsent_jobs_and_in_flight_clones_start_no_audio(
    make_system: Any, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    system: System = make_system(max_in_flight="4")
    # clones of 10 s: the cancel (a CLI process) must land while they run; with 4 s, a
    # loaded make test started it too late twice, and 4 jobs had completed
    simulator.configure(clone_queue_s=0.5, clone_processing_s=10.0, jitter_ratio=0)
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(12, audios=1, prefix="cx"), batch="cx", services=system.services
    )
    system.wait("cx", 30, until="cloning")

    # in-process: a CLI child's start-up under an 8-way loaded run took past the clones'
    # 10 s once (the CLI's cancel has its own test in test_producers_submit)
    batch.cancel(by="test")
    final = batch.wait(timeout=60, poll_interval=0.25)
    docs = system.docs("cx")
    # (the states say where the others stood)
    states = [(d["state"], d["clone"]["state"], d["audios"][0]["state"]) for d in docs]
    assert final.counts["cancelled"] == 12, (final.counts, states)
    in_flight = [d for d in docs if d["clone"]["state"] == "completed"]
    never_sent = [d for d in docs if d["clone"]["state"] == "cancelled"]
    assert 1 <= len(in_flight) <= 4
    assert len(in_flight) + len(never_sent) == 12
    assert all(d["clone"]["model_id"] for d in in_flight)  # the clone finished...
    assert all(d["audios"][0]["state"] == "cancelled" for d in docs)  # ...and no audio began
    summary = simulator.summary()
    assert summary["audios_total"] == 0
    assert summary["clones_total"] == len(in_flight)
