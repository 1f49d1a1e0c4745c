"""`status` says when no worker, or no watchdog, runs (QA: a batch pending with no
worker looked like a slow fleet). Each test has a namespace of its own: presence is
per namespace, and other tests of this process run workers in theirs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

import clonequeue
from clonequeue.config import load_settings
from clonequeue.services import Services
from clonequeue.store.presence import FORGET_AFTER_S, absence_note
from tests.integration.test_producers_submit import cli, row


@pytest.fixture
def own(redis_url: str) -> Services:
    ns = f"w{uuid.uuid4().hex[:6]}"
    return Services(load_settings(env_file=None, redis_url=redis_url, namespace=ns))


def status_stderr(own: Services, redis_url: str, tmp_path: Path) -> str:
    ns = own.settings.namespace
    out = cli(tmp_path, redis_url, "status", "wb", settings={"CLONEQUEUE_NAMESPACE": ns})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "wb: 1 job: pending 1\n"
    return out.stderr


def test_status_says_when_no_worker_ever_ran(own: Services, redis_url: str, tmp_path: Path) -> None:
    clonequeue.submit([row("n1")], batch="wb", services=own)
    assert status_stderr(own, redis_url, tmp_path) == (
        "no worker has run in this namespace (CLONEQUEUE_NAMESPACE) in the last day: nothing "
        "moves until one does; start one with `clonequeue worker` (with --beat unless a "
        "`clonequeue beat` runs) (workers from before 2026-12-07 do not say they run: if "
        "yours do, upgrade them)\n"
    )


def test_status_names_the_last_worker_seen_and_when(
    own: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("n1")], batch="wb", services=own)
    now = own.now()
    own.presence.mark("w1@old-host", now=now - 300, pid=7)
    own.presence.mark("w2@gone-host", now=now - 120, pid=8)  # the CLI takes seconds to start
    own.presence.mark("w3@ancient", now=now - FORGET_AFTER_S - 10, pid=9)  # dropped
    own.presence.watchdog_ran(now=now - 120)
    said = status_stderr(own, redis_url, tmp_path)
    assert re.fullmatch(
        r"no worker running: the last one seen \(w2@gone-host\) stopped 1[2-9]\d s ago; nothing "
        r"moves until one does: start one with `clonequeue worker` \(with --beat unless a "
        r"`clonequeue beat` runs\)\n",
        said,
    ), said
    assert sorted(own.redis.hkeys(own.jobs.keys.workers)) == ["w1@old-host", "w2@gone-host"]


def test_status_says_when_workers_run_but_no_watchdog(
    own: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("n1")], batch="wb", services=own)
    now = own.now()
    own.presence.mark("w1@host", now=now, pid=7)
    assert status_stderr(own, redis_url, tmp_path) == (
        "no watchdog pass in the last day, so lost messages are not sent again and waiting "
        "creates are not released: no beat runs (run one: `clonequeue worker --beat` on one "
        "worker, or `clonequeue beat`), or the workers that took its messages cannot run "
        "them (frozen, or cut from Redis: check their logs)\n"
    )
    own.presence.watchdog_ran(now=now - 100)  # more than 3 intervals and 20 s ago
    assert "no watchdog pass for 10" in status_stderr(own, redis_url, tmp_path)
    own.presence.watchdog_ran(now=now)
    assert status_stderr(own, redis_url, tmp_path) == ""


def test_a_finished_batch_says_nothing_of_workers(
    own: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("n1")], batch="wb", services=own)
    clonequeue.Batch("wb", services=own).cancel(by="test")
    out = cli(
        tmp_path,
        redis_url,
        "status",
        "wb",
        settings={"CLONEQUEUE_NAMESPACE": own.settings.namespace},
    )
    assert out.stderr == ""


def test_the_exporter_gauges_workers_and_the_watchdog_s_age(own: Services) -> None:
    state = own.fleet_state()
    assert state["workers_running"] == 0
    assert state["watchdog_age_s"] == FORGET_AFTER_S  # none in the last day
    now = own.now()
    own.presence.mark("w1@host", now=now, pid=7)
    own.presence.mark("w2@host", now=now - 60, pid=8)  # not running
    own.presence.watchdog_ran(now=now - 5)
    state = own.fleet_state()
    assert state["workers_running"] == 1
    assert 5 <= state["watchdog_age_s"] < 7
    assert absence_note(own.presence.seen(now=now), now=now, watchdog_interval_s=10) is None


def test_unknown_jobs_stay_counted_after_their_batch_finishes(own: Services) -> None:
    """QA: 24 unknown jobs (each paid at the provider) left clonequeue_jobs when their
    batch finished, and nothing kept saying they await a decision."""
    clonequeue.submit([row("u1"), row("u2")], batch="ub", services=own)
    now = own.now()
    for job in ("u1", "u2"):
        claimed = own.jobs.claim_create(job, "c", 0, now=now, lease_s=60)
        assert not isinstance(claimed, str)
        own.jobs.release_create(job, "c", 0, "unknown", {"kind": "no_answer", "msg": "x"}, now=now)
    info = own.batches.info("ub")
    assert info is not None
    assert info.is_finished
    state = own.fleet_state()
    assert state["jobs"]["unknown"] == 0  # its batch is finished
    assert state["unknown_kept"] == 2
