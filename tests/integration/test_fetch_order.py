"""A worker's fetch order on a Redis broker: audio creates get two fetches to a poll's one.

Against the suite's Redis with the app a worker gets (create_app), messages are
fetched as a worker fetches them (kombu's BRPOP over the queues, one at a time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clonequeue.config import load_settings
from clonequeue.dispatch.dispatcher import CeleryDispatcher
from clonequeue.dispatch.fetch_order import PRODUCE_WEIGHT, WeightedCycle
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.app import create_app


@pytest.fixture
def app(redis_url: str) -> Iterator[Any]:
    settings = load_settings(
        env_file=None, redis_url=redis_url, namespace=f"order{uuid.uuid4().hex[:6]}"
    )
    app = create_app(settings)
    yield app
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            connection.default_channel.queue_delete(queue.name)
    app.close()


def fetch_order(app: Any, queues: list[str], count: int) -> list[str]:
    """The queues ``count`` messages came from, in the order a consumer of ``queues`` got them."""
    got: list[str] = []
    with app.connection_for_read() as connection:

        def on_message(body: Any, message: Any) -> None:
            got.append(message.delivery_info["routing_key"])
            message.ack()

        consumer_queues = [app.amqp.queues[name] for name in queues]
        with connection.Consumer(consumer_queues, callbacks=[on_message]):
            while len(got) < count:
                connection.drain_events(timeout=5)
    return got


def test_audio_creates_get_two_fetches_to_a_polls_one_while_both_wait(app: Any) -> None:
    """While the rate binds, the split of fetches decides when a batch's last creates
    go: half and half left the last audios created in the batch's last seconds, and
    the API idle while they ran. Polls still get every third fetch."""
    dispatcher = CeleryDispatcher(app)
    q = dispatcher.queues
    for n in range(6):
        dispatcher.create(Dispatch(f"job-{n}", "0", 1))  # an audio create: produce
        dispatcher.poll(Dispatch(f"job-{n}", "0", 1, remote_id=f"r-{n}"))
    order = fetch_order(app, [q.submit, q.produce, q.poll], 12)
    short = ["create" if name == q.produce else "poll" for name in order]
    assert short[:9].count("create") == 6, short
    assert "poll, poll" not in ", ".join(short[:9])  # never two polls while creates wait
    assert short[9:] == ["poll"] * 3


def test_new_clones_keep_their_plain_turn() -> None:
    """Only the produce list keeps its place: a clone starts a job, an audio ends one."""
    cycle = WeightedCycle()
    cycle.update(["ns.submit", "ns.produce", "ns.poll"])
    wins = []
    for _ in range(8):  # every list has work: the first in the order wins each fetch
        winner = cycle.consume(3)[0]
        wins.append(winner.split(".")[1])
        cycle.rotate(winner)
    assert wins == ["submit", "produce", "produce", "poll"] * 2
    assert PRODUCE_WEIGHT == 2
