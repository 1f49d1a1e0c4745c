"""Webhooks end to end: real workers, a real receiver that verifies every signature."""

from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import sys
import time

import pytest

import clonequeue
from clonequeue.outputs.operate import Results
from tests.e2e.receiver import Receiver
from tests.e2e.system import System, make_rows

pytestmark = pytest.mark.e2e

OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
FAST = {
    "webhook_allow_private": "true",
    "webhook_timeout_s": "2",
    "webhook_retry_schedule_s": "[0, 0.5" + ", 1" * 30 + "]",  # ~30 s in all
    "results_interval_s": "0.5",
}


def wait_for(check, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def deliveries(system: System, batch: str) -> list[dict]:  # type: ignore[type-arg]
    return list(Results(system.services.redis, system.settings).deliveries(batch))


def test_every_event_is_signed_retried_through_500s_and_an_outage_and_none_is_lost(
    make_system: type[System],
) -> None:
    receiver = Receiver(NEW_SECRET, status=500).start()
    # a rotation: both secrets sign; the receiver knows only the new one
    system = make_system(webhook_secret=f"{OLD_SECRET} {NEW_SECRET}", **FAST)
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(8, prefix="wh"), batch="hooks", services=system.services, webhook=receiver.url
    )
    wait_for(lambda: len(receiver.received) >= 5, 60, "the receiver saw attempts (answering 500)")
    receiver.stop()  # down: connections refused
    time.sleep(3)
    receiver.status = 200
    receiver.start()
    system.wait(batch, 60)
    wait_for(
        lambda: (
            all(d["state"] == "done" for d in deliveries(system, batch))
            and len(deliveries(system, batch)) == 9
        ),
        60,
        "all 9 deliveries done",
    )
    assert all(r.verified for r in receiver.received), "an attempt was not signed right"
    ok = receiver.delivered()
    by_type = collections.Counter(r.body["type"] for r in ok)  # type: ignore[index]
    jobs = collections.Counter(
        r.body["data"]["custom_id"] for r in ok if r.body["type"] != "batch.completed"
    )  # type: ignore[index]
    # exactly one logical event per job (at-least-once: a copy keeps its webhook-id)
    ids_per_job = collections.defaultdict(set)
    for r in receiver.received:
        if r.body and r.body["type"].startswith("job."):
            ids_per_job[r.body["data"]["custom_id"]].add(r.msg_id)
    assert sorted(jobs) == [f"wh-{i:05d}" for i in range(8)]
    assert all(len(ids) == 1 for ids in ids_per_job.values()), ids_per_job
    assert by_type["job.completed"] >= 8
    assert by_type["batch.completed"] >= 1
    batch_event = next(r.body for r in ok if r.body["type"] == "batch.completed")  # type: ignore[index]
    assert batch_event["data"]["total"] == 8
    assert batch_event["data"]["completed"] == 8
    # every attempt is recorded, those refused while the receiver was down too
    records = deliveries(system, batch)
    refused = [a for d in records for a in d["attempts"] if "status" not in a]
    answered_500 = [a for d in records for a in d["attempts"] if a.get("status") == 500]
    assert answered_500
    assert len(answered_500) == sum(1 for r in receiver.received if r.status == 500)
    assert sum(d["tries"] for d in records) == len(refused) + len(receiver.received)
    # the secrets are nowhere in Redis
    for key in system.services.redis.scan_iter(match=f"{system.namespace}:*"):
        if system.services.redis.type(key) == "string":
            value = system.services.redis.get(key) or ""
            assert NEW_SECRET[6:] not in value
            assert OLD_SECRET[6:] not in value
    for worker in system.stack.workers:
        log = worker.log_tail(100_000)
        assert NEW_SECRET[6:] not in log
        assert OLD_SECRET[6:] not in log
    receiver.stop()


def test_410_disables_the_endpoint_and_redeliver_sends_again(make_system: type[System]) -> None:
    receiver = Receiver(NEW_SECRET, status=410).start()
    system = make_system(webhook_secret=NEW_SECRET, **FAST)
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(3, prefix="gone"), batch="gone", services=system.services, webhook=receiver.url
    )
    system.wait(batch, 60)
    wait_for(
        lambda: (
            len(deliveries(system, batch)) == 4
            and all(d["state"] == "disabled" for d in deliveries(system, batch))
        ),
        30,
        "every delivery disabled after the 410",
    )
    assert len(receiver.received) <= 4  # nothing retried to a 410'd endpoint
    receiver.status = 200
    env = {**system.stack.env()}
    out = subprocess.run(
        [sys.executable, "-m", "clonequeue", "webhooks", batch, "--redeliver"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "4 deliveries queued again" in out.stderr
    wait_for(
        lambda: all(d["state"] == "done" for d in deliveries(system, batch)), 30, "redelivered"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "clonequeue", "webhooks", batch, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    docs = [json.loads(line) for line in listed]
    assert len(docs) == 4
    assert all([a.get("status") for a in d["attempts"]] == [410, 200] for d in docs[:1])
    assert {d["state"] for d in docs} == {"done"}
    receiver.stop()


def test_a_4xx_stops_and_a_private_target_is_refused_without_the_setting(
    make_system: type[System],
) -> None:
    receiver = Receiver(NEW_SECRET, status=400).start()
    system = make_system(webhook_secret=NEW_SECRET, results_interval_s="0.5")  # no ALLOW_PRIVATE
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(2, prefix="priv"), batch="priv", services=system.services, webhook=receiver.url
    )
    system.wait(batch, 60)
    docs = wait_for(
        lambda: (
            (d := deliveries(system, batch))
            and len(d) == 3
            and all(x["state"] == "failed" for x in d)
            and d
        ),
        30,
        "deliveries refused",
    )
    assert all("loopback" in d["error"] for d in docs)
    assert receiver.received == []  # no byte went out
    receiver.stop()


def test_retries_too_far_off_for_a_countdown_are_driven_by_the_pass(
    make_system: type[System],
) -> None:
    """Waits longer than a fifth of the visibility timeout (30 s here: 6 s) are left to
    the results pass, as an hour's outage would be with the production schedule."""
    receiver = Receiver(NEW_SECRET, status=503).start()
    settings = {**FAST, "webhook_retry_schedule_s": "[0, 12, 12, 12]"}
    system = make_system(webhook_secret=NEW_SECRET, **settings)
    system.start_worker()
    batch = clonequeue.submit(
        make_rows(2, prefix="far"), batch="far", services=system.services, webhook=receiver.url
    )
    system.wait(batch, 60)
    wait_for(lambda: len(receiver.received) >= 3, 30, "first attempts answered 503")
    pending = wait_for(
        lambda: (d := deliveries(system, batch)) and len(d) == 3
        and all(x["state"] == "pending" for x in d) and d,
        30,
        "all waiting for their second attempt",
    )  # fmt: skip
    client = system.services.redis
    due = client.zrange(f"{system.namespace}:webhooks:due", 0, -1, withscores=True)
    seconds, micros = client.time()
    read_at = seconds + micros / 1e6
    next_at = {d["id"]: d["next_at"] for d in pending}
    scores = {member.decode() if isinstance(member, bytes) else member: s for member, s in due}
    assert set(scores) == set(next_at)
    # Due exactly at the attempt's time, no grace: no message is on its way, the pass
    # owns it. (One whose time had come when this was read may be the pass's already.)
    not_yet = [k for k in next_at if next_at[k] > read_at]
    assert not_yet, f"the host was too slow to read before the retries were due: {next_at}"
    assert all(abs(scores[k] - next_at[k]) < 0.01 for k in not_yet), (scores, next_at)
    receiver.status = 200
    wait_for(lambda: all(d["state"] == "done" for d in deliveries(system, batch)), 40, "delivered")
    assert all(d["tries"] == 2 for d in deliveries(system, batch))
    receiver.stop()
