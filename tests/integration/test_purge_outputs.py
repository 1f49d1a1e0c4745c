"""`purge` takes a batch's webhook deliveries and artifact downloads with it (QA pass).

Before, they stayed for CLONEQUEUE_RETENTION_S: a batch made again under the purged
one's name listed the old deliveries, and `webhooks NAME --redeliver` sent the purged
jobs' bodies to the old URL again.
"""

from __future__ import annotations

import time
from pathlib import Path

import clonequeue
from clonequeue.outputs import runner
from clonequeue.outputs.tasks import queue_names
from clonequeue.services import Services
from tests.integration.test_producers_submit import HOOK, cli, row


def finished_batch_with_outputs(services: Services, tmp_path: Path) -> runner.ResultsContext:
    """Batch ``pw`` (two jobs, a webhook and an artifact store), cancelled, with its
    deliveries recorded by a results pass and attempted once (no secret on this
    "worker": each one fails), and a download recorded for each job's preview."""
    clonequeue.submit(
        [row("pw1"), row("pw2")],
        batch="pw",
        services=services,
        webhook=HOOK,
        artifacts=f"file://{tmp_path}/store",
    )
    assert clonequeue.Batch("pw", services=services).cancel() == {"cancelled": 2, "requested": 0}
    ctx = runner.ResultsContext(services.settings, services.redis, publish=lambda *_: None)
    runner.run_pass(ctx)
    for doc in services.batches.docs("pw"):
        doc["clone"]["audio_url"] = f"https://v.example.com/{doc['id']}-preview.mp3"
        assert ctx.planner.plan_artifacts(doc, f"file://{tmp_path}/store", now=time.time())
    for delivery in list(ctx.webhooks.of_batch("pw")):
        runner.deliver_webhook(ctx, delivery["id"])
    return ctx


def output_keys(services: Services) -> list[str]:
    client = services.redis
    found = [*client.scan_iter("p:webhook:*"), *client.scan_iter("p:artifact:*")]
    found += [k for k in ("p:batch:pw:webhooks", "p:batch:pw:artifacts") if client.exists(k)]
    for due in ("p:webhooks:due", "p:artifacts:due"):
        found += [f"{due}={member}" for member in client.zrange(due, 0, -1)]
    return sorted(found)


def test_purge_removes_the_batch_s_deliveries_and_downloads(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    ctx = finished_batch_with_outputs(services, tmp_path)
    delivered = [d["type"] for d in ctx.webhooks.of_batch("pw")]
    assert sorted(delivered) == ["batch.completed", "job.cancelled", "job.cancelled"]
    assert [d["state"] for d in ctx.webhooks.of_batch("pw")] == ["failed"] * 3
    assert len(list(ctx.artifacts.of_batch("pw"))) == 2
    assert output_keys(services)  # what the purge must take

    purged = cli(tmp_path, redis_url, "purge", "pw")
    assert purged.returncode == 0, purged.stderr
    assert output_keys(services) == []


def test_a_batch_made_again_under_a_purged_name_has_none_of_its_deliveries(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    finished_batch_with_outputs(services, tmp_path)
    assert cli(tmp_path, redis_url, "purge", "pw").returncode == 0
    clonequeue.submit([row("pw3")], batch="pw", services=services)  # the name again

    listed = cli(tmp_path, redis_url, "webhooks", "pw", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ""  # no delivery of the purged batch
    redelivered = cli(tmp_path, redis_url, "webhooks", "pw", "--redeliver")
    assert redelivered.returncode == 0, redelivered.stderr
    assert redelivered.stderr.startswith("0 deliveries queued again\n")
    assert services.redis.llen(queue_names("p")["webhook"]) == 0  # nothing old sent
    results = cli(tmp_path, redis_url, "results", "pw")
    assert "artifact" not in results.stdout  # pw3 has no copy of a purged job's file


def test_a_results_pass_or_an_attempt_racing_the_purge_records_nothing_after_it(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """A pass that read a job (or the batch) before the purge and records its items after
    it, or a worker that finishes an attempt after it, must not bring the records back."""
    ctx = finished_batch_with_outputs(services, tmp_path)
    doc = next(services.batches.docs("pw"))
    doc["clone"]["audio_url"] = "https://v.example.com/late-preview.mp3"
    first = next(ctx.webhooks.of_batch("pw"))["id"]
    assert ctx.webhooks.reopen(first, now=time.time(), states=("failed",))  # --redeliver
    claimed = ctx.webhooks.claim(first, now=time.time(), lease_s=60, grace_s=1)
    assert claimed is not None  # an attempt under way
    assert cli(tmp_path, redis_url, "purge", "pw").returncode == 0

    job_hook = {"batch": "pw", "job": "pw1", "type": "job.completed", "url": HOOK, "body": "{}"}
    assert not ctx.webhooks.add("msg_late", job_hook, now=time.time())
    batch_hook = {**job_hook, "job": None, "type": "batch.completed"}
    assert not ctx.webhooks.add("msg_batch_pw_late", batch_hook, now=time.time())
    assert ctx.planner.plan_artifacts(doc, f"file://{tmp_path}/store", now=time.time()) == []
    assert not ctx.webhooks.finish(
        claimed["id"], {"at": time.time()}, claim=claimed["claim"], state="done"
    )
    assert output_keys(services) == []
