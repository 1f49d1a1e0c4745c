"""Submitting into the suite's real Redis: records, Celery messages, dedupe, limits, the CLI."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue.outputs.runner import ResultsContext, deliver_webhook
from clonequeue.producers import parallel
from clonequeue.producers.errors import EstimateTooHighError, ProducerError
from clonequeue.services import Services
from tests.cli_run import clonequeue_cli

HOOK = "https://hooks.example.com/in"


def row(cid: str, text: str = "Hello there") -> dict[str, Any]:
    return {
        "custom_id": cid,
        "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3"},
        "audios": [{"contentText": f"{text} <#0.5#> {cid}"}],
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def queued(services: Services) -> list[dict[str, Any]]:
    raw = services.redis.lrange(services.app.clonequeue_queues.submit, 0, -1)
    return [json.loads(m) for m in reversed(raw)]  # type: ignore[arg-type]


def test_submit_records_jobs_and_queues_ordinary_celery_messages(services: Services) -> None:
    batch = clonequeue.submit([row(f"j{i}") for i in range(3)], batch="b1", services=services)
    assert batch.submission is not None
    assert batch.submission.new == 3
    status = batch.status()
    assert (status.total, status.counts["pending"]) == (3, 3)
    keys = services.jobs.keys
    # each first create has its entry in the due-index from the moment it is recorded
    assert services.redis.zrange(keys.due, 0, -1) == ["c|j0", "c|j1", "c|j2"]
    messages = queued(services)
    # the same envelope, headers and properties as Celery's own send_task
    services.app.send_task(
        "clonequeue.submit_clone", ("ref", 0), queue=services.app.clonequeue_queues.submit
    )
    reference = queued(services)[-1]
    for message in messages:
        assert message.keys() == reference.keys()
        assert message["headers"].keys() == reference["headers"].keys()
        assert message["properties"].keys() == reference["properties"].keys()
        assert message["headers"]["task"] == "clonequeue.submit_clone"
        assert uuid.UUID(message["headers"]["id"]).version == 4
        assert message["headers"]["ignore_result"] is True  # else workers store a result
    bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]
    assert [b[0] for b in bodies] == [["j0", 0], ["j1", 0], ["j2", 0]]


def test_resubmission_sends_nothing_again_and_other_content_is_a_row_error(
    services: Services,
) -> None:
    rows = [row("a"), row("b")]
    clonequeue.submit(rows, batch="first", services=services)
    errors: list[str] = []
    with pytest.warns(clonequeue.RejectedRowsWarning, match="1 of 3 rows rejected: line 2 "):
        again = clonequeue.submit(
            [row("a"), row("b", text="Changed"), row("c")],
            batch="second",
            services=services,
            on_error=lambda e: errors.append(str(e)),
        ).submission
    assert again is not None
    assert (again.new, again.already_submitted, again.rejected) == (1, 1, 1)
    assert dict(again.already_in) == {"first": 1}
    assert errors == [
        "line 2 (b): custom_id already used in batch first with different content; "
        "use another custom_id (or purge that batch)"
    ]
    assert len(queued(services)) == 3  # a, b, then only c
    assert again.estimate.clones == 1


def test_dry_run_records_nothing_but_knows_what_exists(services: Services) -> None:
    clonequeue.submit([row("a")], batch="b1", services=services)
    report = clonequeue.submit(
        [row("a"), row("z")], batch="b2", services=services, dry_run=True
    ).submission
    assert report is not None
    assert (report.new, report.already_submitted) == (1, 1)
    assert services.batches.info("b2") is None
    assert len(queued(services)) == 1


@pytest.mark.parametrize("from_file", [True, False])
def test_max_chars_refuses_before_anything_is_recorded(
    services: Services, tmp_path: Path, from_file: bool
) -> None:
    rows = [row(f"m{i}") for i in range(4)]
    source: Any = write_jsonl(tmp_path / "m.jsonl", rows) if from_file else iter(rows)
    with pytest.raises(EstimateTooHighError) as refused:
        clonequeue.submit(source, batch="m", services=services, max_chars=100)
    assert refused.value.estimate_chars > 100
    assert services.batches.info("m") is None
    assert queued(services) == []
    source = write_jsonl(tmp_path / "m.jsonl", rows) if from_file else iter(rows)
    batch = clonequeue.submit(source, batch="m", services=services, max_chars=10_000)
    assert batch.status().total == 4


def test_a_big_file_checked_in_the_helper_process_gives_the_same_outcome(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[Any] = [row(f"h{i}") for i in range(1200)]
    rows[5] = {"custom_id": "bad", "clone": {"fileUrl": "https://v.example.com/x.txt"}}
    rows[700] = row("h3", text="Changed")
    path = write_jsonl(tmp_path / "h.jsonl", rows)
    monkeypatch.setattr(parallel, "CHILD_MIN_BYTES", 0)
    spawned: list[bool] = []
    original = parallel._child_chunks

    def spy(*args: Any) -> Any:
        spawned.append(True)
        return original(*args)

    monkeypatch.setattr(parallel, "_child_chunks", spy)
    errors: list[str] = []
    with pytest.warns(clonequeue.RejectedRowsWarning, match="2 of 1,200 rows rejected"):
        report = clonequeue.submit(
            path, batch="h", services=services, on_error=lambda e: errors.append(str(e))
        ).submission
    assert spawned == [True]
    assert report is not None
    assert (report.rows, report.new, report.rejected) == (1200, 1198, 2)
    assert errors[0].startswith("line 6 (bad): clone.fileUrl: extension .txt")
    assert errors[1].startswith("line 701 (h3): custom_id: already used by line 4")
    assert len(queued(services)) == 1198


def test_batch_operations_without_workers(services: Services) -> None:
    batch = clonequeue.submit([row("x"), row("y")], batch="ops", services=services)
    with pytest.raises(
        ProducerError,
        match=r"has 2 unfinished jobs; wait, or purge with force=True, which cancels",
    ):
        batch.purge()
    assert batch.cancel() == {"cancelled": 2, "requested": 0}
    status = batch.wait(timeout=5, poll_interval=0.1)
    assert status.is_finished
    assert [r["status"] for r in batch.errors()] == ["cancelled", "cancelled"]
    assert batch.retry(failed=True).jobs == 0  # cancelled is not failed
    assert batch.purge() == 2
    with pytest.raises(clonequeue.ClonequeueError, match="no batch 'ops'"):
        batch.status()


def test_a_forced_purge_of_a_running_batch_says_it_cancelled_it(services: Services) -> None:
    batch = clonequeue.submit([row("f1"), row("f2")], batch="f", services=services)
    services.jobs.claim_create("f1", "c", 0, now=services.now(), lease_s=60)  # in flight
    with pytest.raises(
        ProducerError,
        match=r"has 1 unfinished job; force=True cancelled the batch \(1 stopped, 1 in "
        r"flight "
        r"finish their current step first\); run purge again once they finish",
    ):
        batch.purge(force=True)
    assert batch.status().counts["cancelled"] == 1


def test_wait_times_out_with_what_is_left(services: Services) -> None:
    batch = clonequeue.submit([row("w")], batch="w", services=services)
    with pytest.raises(TimeoutError, match="1 of 1 job still unfinished"):
        batch.wait(timeout=0.3, poll_interval=0.1)


# --- the CLI, as a pipeline runs it ------------------------------------------------------


def cli(
    tmp_path: Path,
    redis_url: str,
    *args: str,
    stdin: str | None = None,
    settings: dict[str, str] | None = None,
) -> Any:
    env = {"CLONEQUEUE_REDIS_URL": redis_url, "CLONEQUEUE_NAMESPACE": "p", **(settings or {})}
    return clonequeue_cli(*args, cwd=tmp_path, settings=env, stdin=stdin)


def test_cli_exit_codes_and_errors_file(services: Services, redis_url: str, tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [row("g1"), row("g2")])
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [row("m1"), {"custom_id": "m2"}])

    ok = cli(tmp_path, redis_url, "submit", str(good), "--batch", "c1")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "c1"
    assert "2 rows: accepted 2 (new 2), rejected 0" in ok.stderr

    some = cli(tmp_path, redis_url, "submit", str(mixed), "--batch", "c2")
    assert some.returncode == 3, some.stderr
    assert "rejected: line 2 (m2): clone: is required" in some.stderr
    errors_file = tmp_path / "mixed.jsonl.errors.jsonl"
    assert json.loads(errors_file.read_text())["row"] == {"custom_id": "m2"}

    over = cli(tmp_path, redis_url, "submit", str(good), "--batch", "c3", "--max-chars", "5")
    assert over.returncode == 0  # everything already submitted: nothing new to bill
    fresh = write_jsonl(tmp_path / "fresh.jsonl", [row("f1")])
    refused = cli(tmp_path, redis_url, "submit", str(fresh), "--max-chars", "5")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the batch would bill")

    dry = cli(tmp_path, redis_url, "submit", "-", "--dry-run", "--json", stdin=fresh.read_text())
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["new"] == 1
    assert services.redis.exists(services.jobs.keys.job("f1")) == 0

    (tmp_path / "rows.txt").write_text(fresh.read_text())  # a file, of no known format
    usage = cli(tmp_path, redis_url, "submit", str(tmp_path / "rows.txt"))
    assert usage.returncode == 2
    missing = cli(tmp_path, redis_url, "submit", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 1
    assert (
        missing.stderr
        == f"error: cannot read {tmp_path / 'missing.jsonl'}: no such file; check the path\n"
    )
    down = cli(tmp_path, "redis://127.0.0.1:1/0", "submit", str(fresh))
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "Traceback" not in down.stderr


def test_cli_estimate_needs_no_redis(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [row("e1"), row("e2")])
    out = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["estimate"] == {
        "preview_chars": 152,
        "production_chars": 30,
        "total_chars": 182,
        "clones": 2,
        "audios": 2,
        "submissions": 4,
    }


def test_cli_batches_status_results_csv_cancel_purge(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("k1"), row("k2")], batch="k", services=services)
    listed = cli(tmp_path, redis_url, "batches", "--json")
    assert [json.loads(line)["batch"] for line in listed.stdout.splitlines()] == ["k"]
    status = cli(tmp_path, redis_url, "status", "k", "--json")
    assert json.loads(status.stdout)["pending"] == 2
    exported = cli(tmp_path, redis_url, "results", "k", "--format", "csv", "-o", "k.csv")
    assert exported.returncode == 0, exported.stderr
    lines = (tmp_path / "k.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["custom_id", "k1", "k2"]
    assert cli(tmp_path, redis_url, "purge", "k").returncode == 1
    cancelled = cli(tmp_path, redis_url, "cancel", "k")
    assert cancelled.stdout.startswith("cancelled 2 jobs")
    waited = cli(tmp_path, redis_url, "status", "k", "--wait", "--interval", "0.1")
    assert waited.returncode == 4  # finished, but not every job completed (a pipeline's check)
    errors = cli(tmp_path, redis_url, "errors", "k")
    assert [json.loads(line)["status"] for line in errors.stdout.splitlines()] == ["cancelled"] * 2
    purged = cli(tmp_path, redis_url, "purge", "k")
    assert purged.stdout.strip() == "purged batch k: 2 job records removed"
    gone = cli(tmp_path, redis_url, "status", "k")
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: no batch 'k'")
    # a batch not found may be the wrong Redis or namespace, or one that kept nothing
    assert "check that CLONEQUEUE_REDIS_URL and CLONEQUEUE_NAMESPACE" in gone.stderr
    assert "without persistence loses every batch" in gone.stderr


def lose_worker_after_create(services: Services, job_id: str) -> float:
    """Job ``job_id``'s create was claimed and its worker died: the watchdog ends it
    ``unknown`` (``lost_worker``). Returns the claim's time."""
    now = time.time()
    services.jobs.claim_create(job_id, "c", 0, now=now, lease_s=60)
    token = services.jobs.lock_watchdog(now=now + 200, lock_ms=10_000)
    assert token is not None
    redriven = services.jobs.redrive(  # the worker died after sending the create
        job_id, "c", now=now + 200, lease_s=10, busy_queues=(), token=token, slack_s=10
    )
    assert redriven == ("unknown", None)
    # released, so the next job can be lost the same way at once
    assert services.jobs.unlock_watchdog(token, now=now + 200, min_gap_ms=0)
    return now


def test_cli_next_steps_name_the_batch_not_a_placeholder(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("u1")], batch="lw", services=services)
    lose_worker_after_create(services, "u1")
    errors = cli(tmp_path, redis_url, "errors", "lw")
    error = json.loads(errors.stdout)["error"]
    assert error["kind"] == "lost_worker"
    assert "then `clonequeue retry lw --unknown` sends it again (once" in error["msg"]

    ctx = ResultsContext(services.settings, services.redis, publish=lambda *_: None)
    hook = {"batch": "lw", "job": "u1", "type": "job.unknown", "url": HOOK, "body": "{}"}
    assert ctx.webhooks.add("msg_1", hook, now=time.time())
    deliver_webhook(ctx, "msg_1")  # no secret on this "worker": nothing is sent
    listed = cli(tmp_path, redis_url, "webhooks", "lw")
    assert "then `clonequeue webhooks lw --redeliver`" in listed.stdout
    delivery = json.loads(cli(tmp_path, redis_url, "webhooks", "lw", "--json").stdout)
    assert delivery["error"].endswith("then `clonequeue webhooks lw --redeliver`")
    assert delivery["attempts"][-1]["error"] == delivery["error"]
    assert "BATCH" not in errors.stdout + listed.stdout


def test_cli_webhooks_of_a_batch_without_one_says_so(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("n1")], batch="nw", services=services)
    listed = cli(tmp_path, redis_url, "webhooks", "nw")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == (  # the fleet default is the workers' setting, not this shell's
        "batch nw has no webhook of its own: it was submitted without --webhook, and the fleet "
        "default is the workers' CLONEQUEUE_WEBHOOK_URL (this shell's is not used), if they "
        "have one. `clonequeue submit FILE --batch nw --webhook URL` gives it one for the jobs "
        "that finish after it (new rows, and rows still running); jobs already finished are "
        "not sent\n"
    )
    as_json = cli(tmp_path, redis_url, "webhooks", "nw", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout == ""  # JSON Lines: no delivery, no line
    assert as_json.stderr == f"note: {listed.stdout}"

    clonequeue.submit([row("h1")], batch="hw", services=services, webhook=HOOK)
    waiting = cli(tmp_path, redis_url, "webhooks", "hw")
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith("batch hw: no deliveries yet")


def test_cli_submit_says_which_options_did_not_apply_to_rows_submitted_before(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "wh.jsonl", [row("w1"), row("w2")])
    assert cli(tmp_path, redis_url, "submit", str(path), "--batch", "wh1").returncode == 0
    store = (tmp_path / "store").as_uri()
    args = ("submit", str(path), "--batch", "wh3", "--artifacts", store)
    again = cli(tmp_path, redis_url, *args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "wh1"
    note = (
        "note: --artifacts did not apply to the 2 rows already submitted in batch wh1: "
        "a row submitted again stays in its batch, with that batch's webhook and artifact store"
    )
    assert note in again.stderr.splitlines()
    as_json = cli(tmp_path, redis_url, *args, "--webhook", HOOK, "--json")
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["batch"] == "wh1"
    assert summary["not_applied"] == {
        "options": ["--webhook", "--artifacts"],
        "batches": {"wh1": 2},
        "note": note.removeprefix("note: ").replace("--artifacts", "--webhook and --artifacts", 1),
    }
    plain = json.loads(cli(tmp_path, redis_url, "submit", str(path), "--json").stdout)
    assert plain["not_applied"] is None  # no option given: nothing to say


def test_cli_submit_warns_when_no_webhook_secret_is_set_here(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [row("s1")])
    unset = cli(tmp_path, redis_url, "submit", str(path), "--batch", "ws", "--webhook", HOOK)
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.splitlines()[-1] == "ws"  # a warning, not a refusal
    assert (
        "warning: --webhook: CLONEQUEUE_WEBHOOK_SECRET (or CLONEQUEUE_WEBHOOK_SECRET_FILE) is "
        "not set here; the workers sign every delivery with it, and every delivery fails if "
        "they lack it too"
    ) in unset.stderr
    secret = {"CLONEQUEUE_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode()}
    path = write_jsonl(tmp_path / "s2.jsonl", [row("s2")])
    is_set = cli(tmp_path, redis_url, "submit", str(path), "--webhook", HOOK, settings=secret)
    assert is_set.returncode == 0, is_set.stderr
    assert "WEBHOOK_SECRET" not in is_set.stderr


def test_a_cancel_is_taken_back_with_retry_cancelled(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """Resubmitting a cancelled batch's file sent nothing (every row known), and purging
    it to submit again would pay twice for clones made before the cancel."""
    batch = clonequeue.submit([row("x"), row("y")], batch="tb", services=services)
    assert batch.cancel() == {"cancelled": 2, "requested": 0}
    taken_back = cli(tmp_path, redis_url, "retry", "tb", "--cancelled")
    assert taken_back.returncode == 0, taken_back.stderr
    assert taken_back.stdout.startswith("cancelled: 2 jobs queued again (2 creates)")
    status = batch.status()
    assert status.counts.get("cancelled", 0) == 0
    assert status.open_jobs == 2
    assert [r["error"] for r in batch.results()] == [None, None]
