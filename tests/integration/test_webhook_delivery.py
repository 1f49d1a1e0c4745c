"""One delivery task on the suite's Redis and a real receiver on 127.0.0.1: the cap on
deliveries at once, what is recorded for each way an attempt ends, and what is logged."""

from __future__ import annotations

import base64
import http.server
import io
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from clonequeue.config import load_settings
from clonequeue.logs import set_log_context, setup_logging
from clonequeue.outputs import runner
from tests.integration.slow_receivers import TrickleReceiver

SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()


class Receiver:
    """Answers ``status``; while ``hold`` is clear, each request waits for it (up to 10 s)."""

    def __init__(self) -> None:
        self.status = 204
        self.hold = threading.Event()
        self.hold.set()
        self.seen: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.seen.append(self.headers.get("webhook-id", ""))
                receiver.hold.wait(10)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str = "hook") -> str:
        return f"http://{self.base}/{path}?token=Q-CANARY"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.hold.set()
    r.httpd.shutdown()
    r.httpd.server_close()


Published = list[tuple[str, str, "float | None"]]


def context(redis_url: str, published: Published, **settings: Any) -> runner.ResultsContext:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "namespace": "ns",
        "webhook_secret": SECRET,
        "webhook_allow_private": True,
        "webhook_timeout_s": 2,
        **settings,
    }
    return runner.ResultsContext(
        load_settings(env_file=None, **values),
        redis.Redis.from_url(redis_url, decode_responses=True),
        lambda kind, item, countdown: published.append((kind, item, countdown)),
    )


def add(ctx: runner.ResultsContext, item_id: str, url: str, body: Any = "{}") -> None:
    """A delivery of job ``job-<item_id>`` of batch ``b1`` (both exist: a record of a
    purged batch or job is never made)."""
    job = f"job-{item_id}"
    ctx.client.hset(ctx.keys.batch("b1"), "total", 1)
    ctx.client.set(ctx.keys.job(job), "{}")
    hook = {"batch": "b1", "job": job, "type": "job.completed", "url": url, "body": body}
    assert ctx.webhooks.add(item_id, hook, now=time.time())


def attempts_counted(verdict: str) -> float:
    value = REGISTRY.get_sample_value("clonequeue_webhook_attempts_total", {"verdict": verdict})
    return value or 0.0


def wait_until(check: Any, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


# --- the cap: CLONEQUEUE_WEBHOOK_CONCURRENCY -----------------------------------------------


def test_deliveries_beyond_the_cap_wait_outside_holding_no_claim(
    redis_client: redis.Redis, redis_url: str, receiver: Receiver
) -> None:
    """QA: 24 deliveries to a receiver that slept 8 s took the worker's threads and an
    unrelated batch ran 33 s instead of 17-20 s. Past the cap a delivery is not
    claimed (no lease runs out while it waits) and comes back in a second."""
    published: Published = []
    ctx = context(redis_url, published, webhook_concurrency=2, webhook_timeout_s=5)
    for i in range(3):
        add(ctx, f"msg_{i}", receiver.url())
    receiver.hold.clear()
    answers: dict[str, str] = {}

    def deliver(item_id: str) -> None:
        answers[item_id] = runner.deliver_webhook(ctx, item_id)

    running = [threading.Thread(target=deliver, args=(f"msg_{i}",)) for i in range(2)]
    for thread in running:
        thread.start()
    wait_until(lambda: len(receiver.seen) == 2)
    third = threading.Thread(target=deliver, args=("msg_2",))
    third.start()
    third.join(1.0)
    over_cap_returned = not third.is_alive()
    receiver.hold.set()
    for thread in [*running, third]:
        thread.join(10)
    assert over_cap_returned, "the third delivery ran past the cap"
    assert answers["msg_2"] == "all webhook slots busy; again in 1 s"
    assert ("webhook", "msg_2", 1.0) in published
    waiting = ctx.webhooks.get("msg_2")
    assert waiting is not None
    assert (waiting["state"], waiting["tries"]) == ("pending", 0)  # never claimed
    assert sorted(receiver.seen) == ["msg_0", "msg_1"]
    assert runner.deliver_webhook(ctx, "msg_2") == "delivered 204"  # a slot is free again


def test_the_cap_defaults_to_four_per_worker_process(redis_url: str) -> None:
    ctx = context(redis_url, [])
    assert ctx.settings.webhook_concurrency == 4
    assert ctx.webhook_slots is not None
    taken = [ctx.webhook_slots.acquire(blocking=False) for _ in range(5)]
    assert taken == [True] * 4 + [False]


# --- every attempt ends recorded ------------------------------------------------------------


def test_an_unexpected_error_in_an_attempt_is_a_recorded_failure_not_a_crash(
    redis_client: redis.Redis, redis_url: str, receiver: Receiver
) -> None:
    """QA: a port out of range raised ValueError in the task every 20-40 s, for ever,
    and the delivery stayed `sending, tries 0`. Any error an attempt raises is recorded
    as the attempt's outcome: not retried, as it would only happen again."""
    published: Published = []
    ctx = context(redis_url, published)
    add(ctx, "msg_port", "http://127.0.0.1:99999/x")  # recorded before submit refused it
    add(ctx, "msg_bug", receiver.url(), body={"not": "text"})  # a record no attempt can send
    for item_id in ("msg_port", "msg_bug"):
        runner.deliver_webhook(ctx, item_id)
        doc = ctx.webhooks.get(item_id)
        assert doc is not None
        assert (doc["state"], doc["tries"], doc["attempts"][-1]["verdict"]) == (
            "failed",
            1,
            "stop",
        ), doc
    assert "port" in ctx.webhooks.get("msg_port")["error"]  # type: ignore[index]
    bug = ctx.webhooks.get("msg_bug")["error"]  # type: ignore[index]
    assert bug.startswith("TypeError: "), bug  # what standardwebhooks raises for a dict
    assert "not retried" in bug
    assert published == []
    assert receiver.seen == []


def test_the_last_attempt_is_recorded_as_gave_up_and_counted_so(
    redis_client: redis.Redis, redis_url: str, receiver: Receiver
) -> None:
    receiver.status = 500
    ctx = context(redis_url, [], webhook_retry_schedule_s="[0, 0]")
    add(ctx, "msg_g", receiver.url())
    before = attempts_counted("gave_up"), attempts_counted("retry")
    runner.deliver_webhook(ctx, "msg_g")
    ctx.clock = lambda: time.time() + 1
    runner.deliver_webhook(ctx, "msg_g")
    doc = ctx.webhooks.get("msg_g")
    assert doc is not None
    assert [a["verdict"] for a in doc["attempts"]] == ["retry", "gave_up"]
    assert (doc["state"], doc["tries"]) == ("failed", 2)
    assert doc["error"] == "gave up after 2 attempts; last: HTTP 500"
    assert (attempts_counted("gave_up"), attempts_counted("retry")) == (
        before[0] + 1, before[1] + 1
    )  # fmt: skip


def test_a_delivery_to_a_disabled_endpoint_is_recorded_without_an_attempt(
    redis_client: redis.Redis, redis_url: str, receiver: Receiver
) -> None:
    """Nothing is sent to an endpoint that answered 410: no try is counted, no attempt."""
    ctx = context(redis_url, [])
    receiver.status = 410
    add(ctx, "msg_410", receiver.url())
    add(ctx, "msg_after", receiver.url())
    runner.deliver_webhook(ctx, "msg_410")
    before = attempts_counted("disable")
    assert runner.deliver_webhook(ctx, "msg_after") == (
        "skipped: endpoint disabled: it answered 410 Gone before"
    )
    doc = ctx.webhooks.get("msg_after")
    assert doc is not None
    assert (doc["state"], doc["tries"], doc["attempts"] or []) == ("disabled", 0, [])
    assert doc["error"] == "endpoint disabled: it answered 410 Gone before; nothing sent"
    assert attempts_counted("disable") == before
    assert receiver.seen == ["msg_410"]


def test_the_warning_lines_name_batch_job_and_host_never_the_query(
    redis_client: redis.Redis, redis_url: str, receiver: Receiver
) -> None:
    receiver.status = 400
    ctx = context(redis_url, [])
    add(ctx, "msg_w", receiver.url())
    stream = io.StringIO()
    setup_logging(ctx.settings, stream=stream)
    set_log_context()  # as the task does: another test's context may be on this thread
    try:
        runner.deliver_webhook(ctx, "msg_w")
    finally:
        logging.getLogger().handlers.clear()
    lines = [line for line in stream.getvalue().splitlines() if "msg_w" in line]
    assert len(lines) == 1, stream.getvalue()
    assert f"webhook msg_w to {receiver.base}: not delivered: HTTP 400: not retried" in lines[0]
    assert lines[0].endswith("[job=job-msg_w batch=b1]")
    assert "CANARY" not in stream.getvalue()


@pytest.mark.timing
def test_an_attempt_against_a_trickling_receiver_ends_well_inside_its_lease(
    redis_client: redis.Redis, redis_url: str
) -> None:
    ctx = context(redis_url, [], webhook_timeout_s=0.5)
    with TrickleReceiver(delay_s=0.1) as slow:
        add(ctx, "msg_slow", slow.url)
        started = time.monotonic()
        runner.deliver_webhook(ctx, "msg_slow")
        took = time.monotonic() - started
    doc = ctx.webhooks.get("msg_slow")
    assert doc is not None
    print(f"claim + attempt + record: {took:.2f} s; lease {ctx.lease_s('webhook')} s")
    assert doc["state"] == "pending"  # retried: a timeout like any other
    assert doc["attempts"][-1]["ms"] <= 500 + 150
    assert took < ctx.lease_s("webhook") / 2
    assert slow.connections == 1
