"""What `status` tells an operator to run next, and counts of one, on the suite's Redis."""

from __future__ import annotations

import json
import re
from pathlib import Path

import clonequeue
from clonequeue.config import load_settings
from clonequeue.services import Services
from clonequeue.store.jobs import Skipped
from tests.integration.conftest import workers_running
from tests.integration.test_producers_submit import cli, lose_worker_after_create, row


def test_status_names_the_commands_for_unknown_jobs_and_a_balance_pause(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("u1"), row("u2")], batch="nx", services=services)
    now = lose_worker_after_create(services, "u1")
    reason = "insufficient balance — top up the account: … or at once with `clonequeue resume`"
    services.fleet.pause(reason, now=now, kind="balance")
    workers_running(services)

    out = cli(tmp_path, redis_url, "status", "nx")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "nx: 2 jobs: pending 1, unknown 1\n"
    unknown, paused = out.stderr.splitlines()
    # its worker may only be frozen: `retry --unknown` alone would leave it (it used to be
    # advised plainly, and then said it left the job)
    assert re.fullmatch(
        r"1 job unknown \(a create went out and no answer we could take came back: it may be "
        r"billed\); check "
        r"`clonequeue errors nx`, then `clonequeue retry nx --unknown` sends again; not before "
        r"\d\d:\d\d:\d\d UTC: the worker that sent its create did not store the answer within "
        r"its lease and may only be frozen \(a stopped process, a paused VM\), so its answer "
        r"may still come \(`--force` too sends it now\)",
        unknown,
    ), unknown
    assert paused == f"creates paused: {reason}"
    settled = cli(
        tmp_path, redis_url, "status", "nx", settings={"CLONEQUEUE_UNKNOWN_SETTLE_S": "0"}
    )
    assert settled.stderr.splitlines()[0] == (
        "1 job unknown (a create went out and no answer we could take came back: it may be "
        "billed); check "
        "`clonequeue errors nx`, then `clonequeue retry nx --unknown` sends again"
    )
    as_json = cli(tmp_path, redis_url, "status", "nx", "--json")
    assert json.loads(as_json.stdout)["unknown"] == 1
    assert as_json.stderr == ""  # --json: the counts say it, stdout stays one object


def test_counts_of_one_read_right(services: Services, redis_url: str, tmp_path: Path) -> None:
    clonequeue.submit([row("o1")], batch="one", services=services)
    early = cli(tmp_path, redis_url, "errors", "one")
    # QA: "0 jobs did not complete" while every job was still pending read as all done
    assert early.stderr == "0 jobs failed, unknown or cancelled; 1 not finished yet\n"
    status = cli(tmp_path, redis_url, "status", "one")
    assert status.stdout == "one: 1 job: pending 1\n"
    cancelled = cli(tmp_path, redis_url, "cancel", "one")
    assert cancelled.stdout.startswith("cancelled 1 job; 0 in flight will finish")
    errors = cli(tmp_path, redis_url, "errors", "one")
    assert errors.stderr == "1 job failed, unknown or cancelled\n"
    purged = cli(tmp_path, redis_url, "purge", "one")
    assert purged.stdout == "purged batch one: 1 job record removed\n"


def test_status_names_the_commands_for_failed_jobs(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """Failed jobs got no next step while unknown ones did (operator QA pass)."""
    clonequeue.submit([row("x1"), row("x2")], batch="fx", services=services)
    for job in ("x1", "x2"):
        services.jobs.claim_create(job, "c", 0, now=1.0, lease_s=60)
        services.jobs.release_create(
            job, "c", 0, "rejected", {"kind": "remote", "msg": "no"}, now=1.0
        )
    out = cli(tmp_path, redis_url, "status", "fx")
    assert out.stdout == "fx: 2 jobs: failed 2\n"
    assert out.stderr == (
        "2 jobs failed: `clonequeue errors fx` says why, `clonequeue retry fx` sends them again\n"
    )


def test_status_says_when_creates_wait_for_a_free_slot(redis_url: str, tmp_path: Path) -> None:
    """Creates parked at the in-flight cap looked like jobs pending for no reason."""
    # a namespace of its own: the fleet's slots and parked creates are per namespace, and
    # other tests of this process leave theirs in "p"
    capped = Services(
        load_settings(env_file=None, redis_url=redis_url, namespace="cap", max_in_flight=1)
    )
    clonequeue.submit([row("c1"), row("c2")], batch="cap", services=capped)
    assert not isinstance(capped.jobs.claim_create("c1", "c", 0, now=1.0, lease_s=60), Skipped)
    parked = capped.jobs.claim_create("c2", "c", 0, now=1.0, lease_s=60)
    assert isinstance(parked, Skipped)
    assert parked.reason.startswith("parked")
    workers_running(capped)
    out = cli(tmp_path, redis_url, "status", "cap", settings={"CLONEQUEUE_NAMESPACE": "cap"})
    assert out.stderr == (
        "1 create of the fleet waits for a free slot: 1 task in flight, the workers' "
        "CLONEQUEUE_MAX_IN_FLIGHT; they go as those finish\n"
    )
