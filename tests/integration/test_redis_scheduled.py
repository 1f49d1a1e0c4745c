"""On a Redis broker, a countdown waits in a sorted set, not in its queue's list.

Against the suite's Redis with the app a worker gets (create_app): a poll published
with a countdown is not in the poll list (where a worker would fetch it early and
hold it, or fetch it behind other not-yet-due polls) but in ``<list>:scheduled``,
scored on the broker's clock; the mover puts it on the list when it is due, earliest
first, and a worker then receives the message kombu would have pushed. And the order
a worker fetches its lists in: audio creates get two fetches to a poll's one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clonequeue.config import load_settings
from clonequeue.constants import POLL_AUDIO, POLL_CLONE
from clonequeue.dispatch.dispatcher import CeleryDispatcher
from clonequeue.dispatch.fetch_order import PRODUCE_WEIGHT, WeightedCycle
from clonequeue.dispatch.messages import DUE_HEADER
from clonequeue.dispatch.scheduled import (
    DELAY_HEADER,
    MOVE_INTERVAL_S,
    ScheduledMover,
    first_key,
    move_due,
    scheduled_counts,
    scheduled_key,
)
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.app import create_app


@pytest.fixture
def app(redis_url: str) -> Iterator[Any]:
    settings = load_settings(
        env_file=None, redis_url=redis_url, namespace=f"sched{uuid.uuid4().hex[:6]}"
    )
    app = create_app(settings)
    yield app
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            channel.queue_delete(queue.name)
            channel.client.delete(scheduled_key(queue.name), first_key(queue.name))
    app.close()


def broker(app: Any) -> Any:
    """A plain client of the broker's Redis (the suite's own server)."""
    connection = app.connection_for_write()
    return connection, connection.default_channel._create_client()


def receive(app: Any, queue: str | list[str], count: int) -> list[Any]:
    """Fetch ``count`` messages from ``queue`` (or several) as a worker would (acknowledged)."""
    got: list[Any] = []
    names = [queue] if isinstance(queue, str) else queue
    with app.connection_for_read() as connection:

        def on_message(body: Any, message: Any) -> None:
            got.append(message)
            message.ack()

        consumer_queues = [app.amqp.queues[name] for name in names]
        with connection.Consumer(consumer_queues, callbacks=[on_message]):
            while len(got) < count:
                connection.drain_events(timeout=5)
    return got


def test_a_countdown_waits_in_the_scheduled_set_until_due(app: Any) -> None:
    dispatcher = CeleryDispatcher(app)
    poll = dispatcher.queues.poll
    connection, client = broker(app)
    with connection:
        dispatcher.poll(Dispatch("job-1", "0", 3, remote_id="r-1"), countdown=3.0)
        dispatcher.poll(Dispatch("job-2", "0", 3, remote_id="r-2"), countdown=1.5)
        assert client.llen(poll) == 0  # not on the list: no worker can fetch it early
        assert scheduled_counts(client, [poll]) == {poll: 2}
        sec, usec = client.time()
        now_s = sec + usec / 1e6
        waiting = client.zrange(scheduled_key(poll), 0, -1, withscores=True)
        due = sorted(score / 1e6 for _, score in waiting)  # µs of the broker's clock
        assert now_s < due[0] <= now_s + 1.5
        assert due[1] - due[0] == pytest.approx(1.5, abs=0.3)

        assert move_due(client, [poll]) == 0  # nothing due yet
        time.sleep(due[0] - now_s + 0.05)
        assert move_due(client, [poll]) == 1
        assert client.llen(poll) == 1
        assert scheduled_counts(client, [poll]) == {poll: 1}
        time.sleep(due[1] - due[0])
        assert move_due(client, [poll]) == 1

    first, second = receive(app, poll, 2)  # earliest due first
    assert first.headers["task"] == POLL_AUDIO
    assert first.headers["argsrepr"] == "job=job-2 audio=0 remote=r-2 gen=3"
    assert second.headers["argsrepr"] == "job=job-1 audio=0 remote=r-1 gen=3"
    # no ETA: a worker runs it at once; the due time rides in our header (lateness metric)
    assert first.headers.get("eta") is None
    assert first.headers[DELAY_HEADER] == 1.5
    assert abs(first.headers[DUE_HEADER] - app.now().timestamp()) < 5


def test_a_clones_poll_that_comes_due_is_fetched_before_the_polls_waiting_in_the_list(
    app: Any,
) -> None:
    """A due clone poll unlocks its job's audios: it goes to the fetching end of the
    poll list, ahead of audio polls due before it, and clone polls among themselves
    keep the order they came due in."""
    dispatcher = CeleryDispatcher(app)
    poll = dispatcher.queues.poll
    connection, client = broker(app)
    with connection:
        for n in range(3):
            dispatcher.poll(Dispatch(f"audio-{n}", "0", 1, remote_id=f"a-{n}"), countdown=0.01)
        dispatcher.poll(Dispatch("clone-late", "c", 1, remote_id="c-2"), countdown=0.4)
        dispatcher.poll(Dispatch("clone-early", "c", 1, remote_id="c-1"), countdown=0.2)
        assert scheduled_counts(client, [poll]) == {poll: 5}
        time.sleep(0.1)
        assert move_due(client, [poll]) == 3  # the audio polls wait in the list
        time.sleep(0.5)
        assert move_due(client, [poll]) == 2
    messages = receive(app, poll, 5)
    assert [m.headers["task"] for m in messages[:2]] == [POLL_CLONE, POLL_CLONE]
    order = [m.headers["argsrepr"].split()[0] for m in messages]
    assert order == [
        "job=clone-early",
        "job=clone-late",
        "job=audio-0",
        "job=audio-1",
        "job=audio-2",
    ]


def test_clone_polls_moved_in_several_goes_are_fetched_in_the_order_they_came_due(
    app: Any,
) -> None:
    """A go of due clone polls waits while the list's fetching end still holds one of
    the go before: pushed on top of them, the latest due was fetched first and the
    earliest waited longest (issue 15's bench: the first quarter's clones 34 s late)."""
    dispatcher = CeleryDispatcher(app)
    poll = dispatcher.queues.poll
    connection, client = broker(app)
    with connection:
        dispatcher.poll(Dispatch("audio", "0", 1, remote_id="a-1"), countdown=0.01)
        for n, countdown in ((1, 0.1), (2, 0.3), (3, 0.4)):
            dispatcher.poll(Dispatch(f"clone-{n}", "c", 1, remote_id=f"c-{n}"), countdown=countdown)
        time.sleep(0.2)
        assert move_due(client, [poll]) == 2  # the audio poll, and clone-1 at the fetching end
        time.sleep(0.3)
        assert move_due(client, [poll]) == 0  # clone-1 not fetched yet: 2 and 3 wait
        assert scheduled_counts(client, [poll]) == {poll: 2}
        (fetched,) = receive(app, poll, 1)
        assert fetched.headers["argsrepr"].split()[0] == "job=clone-1"
        assert move_due(client, [poll]) == 2
    order = [m.headers["argsrepr"].split()[0] for m in receive(app, poll, 3)]
    assert order == ["job=clone-2", "job=clone-3", "job=audio"]


def test_a_message_without_a_countdown_goes_straight_on(app: Any) -> None:
    dispatcher = CeleryDispatcher(app)
    connection, client = broker(app)
    with connection:
        dispatcher.poll(Dispatch("job-1", "c", 1, remote_id="r-1"))
        dispatcher.create(Dispatch("job-2", "c", 1), countdown=0)
        assert client.llen(dispatcher.queues.poll) == 1
        assert client.llen(dispatcher.queues.submit) == 1
        assert scheduled_counts(client, dispatcher.queues.all) == dict.fromkeys(
            dispatcher.queues.all, 0
        )


def test_a_batch_publish_with_a_countdown_is_scheduled_too(app: Any) -> None:
    """kombu's Producer.batch() pipelines the commands: ours goes into its pipeline."""
    CeleryDispatcher(app)  # a publisher of ours, as the producers use: installs the hook
    queue = app.amqp.queues[app.clonequeue_queues.submit]
    connection, client = broker(app)
    with connection, app.producer_or_acquire() as producer, producer.batch():
        producer.publish(
            {"n": 1},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            headers={DELAY_HEADER: 60.0},
        )
        producer.publish({"n": 2}, exchange=queue.exchange, routing_key=queue.routing_key)
    with connection:
        assert client.llen(queue.name) == 1
        (payload,) = client.zrange(scheduled_key(queue.name), 0, -1)
        assert json.loads(payload)["headers"][DELAY_HEADER] == 60.0


def test_the_mover_puts_due_messages_on_their_lists_and_survives_a_broken_connection(
    app: Any,
) -> None:
    dispatcher = CeleryDispatcher(app)
    names = [q.name for q in app.amqp.queues.values()]
    connects: list[int] = []

    def connect() -> Any:
        connects.append(1)
        if len(connects) == 1:
            raise ConnectionError("broker away")  # the first attempt fails: it retries
        return app.connection_for_write()

    mover = ScheduledMover(connect, names)
    mover.start()
    try:
        dispatcher.create(Dispatch("job-1", "0", 2), countdown=0.3)
        (message,) = receive(app, dispatcher.queues.produce, 1)
    finally:
        mover.stop()
    assert message.headers["argsrepr"] == "job=job-1 audio=0 gen=2"
    assert len(connects) == 2
    assert MOVE_INTERVAL_S <= 0.1  # a due message reaches its list this soon


# --- the fetch order: audio creates get two fetches to a poll's one ---------------------


def test_audio_creates_get_two_fetches_to_a_polls_one_while_both_wait(app: Any) -> None:
    """While the rate binds, the split of fetches decides when a batch's last creates
    go: half and half left the last audios created in the batch's last seconds, and
    the API idle while they ran. Polls still get every third fetch."""
    dispatcher = CeleryDispatcher(app)
    q = dispatcher.queues
    for n in range(6):
        dispatcher.create(Dispatch(f"job-{n}", "0", 1))  # an audio create: produce
        dispatcher.poll(Dispatch(f"job-{n}", "0", 1, remote_id=f"r-{n}"))
    received = receive(app, [q.submit, q.produce, q.poll], 12)
    order = [m.delivery_info["routing_key"] for m in received]
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
