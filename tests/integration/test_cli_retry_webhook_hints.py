"""What `retry` and `webhooks` tell an operator to run next, on the suite's Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

import clonequeue
from clonequeue.outputs.runner import ResultsContext, deliver_webhook
from clonequeue.services import Services
from tests.integration.test_producers_submit import HOOK, cli, lose_worker_after_create, row

# --- retry: unknown jobs are not retried by default; say how many, and how ------------------


def test_retry_of_failed_names_the_unknown_jobs_it_left(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row(f"u{i}") for i in range(4)], batch="ru", services=services)
    for i in range(4):
        lose_worker_after_create(services, f"u{i}")
    out = cli(tmp_path, redis_url, "retry", "ru")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "failed: 0 jobs queued again (0 creates)\n"
    assert out.stderr.startswith(
        "4 jobs unknown, not retried: a create went out and no answer we could take came back, "
        "so each may "
        "exist and be billed already; `clonequeue retry ru --unknown` sends them again (they "
        "may be billed twice); not before "
    )  # their worker may only be frozen: `retry --unknown` alone would still leave them
    assert out.stderr.endswith("may still come (`--force` too sends them now)\n")
    assert services.batches.info("ru").counts["unknown"] == 4  # type: ignore[union-attr]

    one = cli(tmp_path, redis_url, "retry", "ru", "--failed")
    assert one.stderr.startswith("4 jobs unknown, not retried:")


def test_retry_of_one_unknown_job_reads_right_and_none_says_nothing(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("v1"), row("v2")], batch="rv", services=services)
    lose_worker_after_create(services, "v1")
    out = cli(tmp_path, redis_url, "retry", "rv")
    assert out.stderr.startswith(
        "1 job unknown, not retried: a create went out and no answer we could take came back, "
        "so it may "
        "exist and be billed already; `clonequeue retry rv --unknown` sends it again (it "
        "may be billed twice); not before "
    )
    assert out.stderr.endswith(
        "the worker that sent its create did not store the answer within its lease and may "
        "only be frozen (a stopped process, a paused VM), so its answer may still come "
        "(`--force` too sends it now)\n"
    )
    clonequeue.submit([row("w1")], batch="rw", services=services)
    clean = cli(tmp_path, redis_url, "retry", "rw")
    assert (clean.returncode, clean.stderr) == (0, "")


def test_retry_of_unknown_jobs_whose_worker_may_be_frozen_waits_unless_forced(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """A worker frozen past its lease (SIGSTOP, a paused VM) still stores its answers when
    it wakes: a retry in between paid each create twice (QA pass)."""
    clonequeue.submit([row("f1"), row("f2")], batch="rf", services=services)
    for job in ("f1", "f2"):
        lose_worker_after_create(services, job)
    out = cli(tmp_path, redis_url, "retry", "rf", "--unknown")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "unknown: 0 jobs queued again (0 creates)\n"
    assert out.stderr.startswith("2 unknown jobs left until ")
    assert "may only be frozen" in out.stderr
    assert out.stderr.endswith("or run `clonequeue retry rf --unknown --force` to send them now\n")
    forced = cli(tmp_path, redis_url, "retry", "rf", "--unknown", "--force")
    assert forced.stdout == "unknown: 2 jobs queued again (2 creates)\n"
    assert forced.stderr == ""


def test_purge_waits_for_unknown_jobs_whose_worker_may_be_frozen_unless_forced(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """Purged in the window, a woken worker's answers were paid tasks with no record."""
    clonequeue.submit([row("p1")], batch="rp", services=services)
    lose_worker_after_create(services, "p1")
    out = cli(tmp_path, redis_url, "purge", "rp")
    assert out.returncode == 1
    assert out.stderr.startswith("error: batch rp has 1 unknown job whose worker did not store")
    assert out.stderr.rstrip().endswith("or with --force")
    assert services.batches.info("rp") is not None
    forced = cli(tmp_path, redis_url, "purge", "rp", "--force")
    assert forced.returncode == 0, forced.stderr
    assert services.batches.info("rp") is None


# --- webhooks: failed or disabled deliveries name --redeliver -------------------------------


def add_delivery(services: Services, batch: str, job: str, item_id: str, *, gone: bool) -> None:
    """A delivery that ended failed (no secret on this "worker": nothing is sent) or
    disabled (its endpoint answered 410 before)."""
    ctx = ResultsContext(services.settings, services.redis, publish=lambda *_: None)
    url = f"{HOOK}/{item_id}"
    if gone:
        services.redis.sadd(ctx.keys.disabled_endpoints, url)
    hook = {"batch": batch, "job": job, "type": "job.unknown", "url": url, "body": "{}"}
    assert ctx.webhooks.add(item_id, hook, now=time.time())
    deliver_webhook(ctx, item_id)


def test_webhooks_with_failed_or_disabled_deliveries_names_redeliver(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("h1"), row("h2"), row("h3")], batch="wh", services=services)
    add_delivery(services, "wh", "h1", "msg_gone1", gone=True)
    add_delivery(services, "wh", "h2", "msg_gone2", gone=True)
    add_delivery(services, "wh", "h3", "msg_fail", gone=False)
    hint = (
        "1 delivery failed, 2 disabled (their endpoints answered 410 Gone): "
        "`clonequeue webhooks wh --redeliver` sends them again\n"
    )
    listed = cli(tmp_path, redis_url, "webhooks", "wh")
    assert listed.returncode == 4, listed.stderr  # a script checking deliveries sees it
    assert len(listed.stdout.splitlines()) == 3
    assert listed.stderr == hint

    as_json = cli(tmp_path, redis_url, "webhooks", "wh", "--json")
    assert [json.loads(line)["state"] for line in as_json.stdout.splitlines()].count(
        "disabled"
    ) == 2
    assert as_json.stderr == hint  # stdout stays JSON Lines
    assert as_json.returncode == 4

    again = cli(tmp_path, redis_url, "webhooks", "wh", "--redeliver")
    assert again.stderr == "3 deliveries queued again\n"  # pending now: nothing to hint
    assert again.returncode == 0


def test_webhooks_with_only_disabled_ones_reads_right(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("d1")], batch="wd", services=services)
    add_delivery(services, "wd", "d1", "msg_gone", gone=True)
    listed = cli(tmp_path, redis_url, "webhooks", "wd")
    assert listed.stderr == (
        "1 delivery disabled (its endpoint answered 410 Gone): "
        "`clonequeue webhooks wd --redeliver` sends it again\n"
    )
