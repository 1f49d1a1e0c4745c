"""A closed Redis channel fails with a connection error, which Celery handles, not AttributeError.

Against the suite's Redis: a message is fetched unacknowledged, its channel ends up
as a worker's did after a Redis restart (closed: no connection, no connection pool),
and then the late ack of a task that finished meanwhile arrives. That ack killed the
worker with "Unrecoverable error: AttributeError ... 'client'" before the guard.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue

from clonequeue.workers import kombu_fixes

QUEUE = "kombu-fixes-test"


@pytest.fixture
def fetched(redis_client: redis.Redis, redis_url: str) -> Iterator[tuple[Connection, object]]:
    """An unacknowledged message on a channel whose connection was closed since."""
    kombu_fixes.apply()
    with Connection(redis_url) as conn:
        queue = Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)
        channel = conn.channel()
        producer = conn.Producer(channel)
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key=QUEUE, declare=[queue])
        message = queue(channel).get(no_ack=False)
        assert message is not None
        channel.close()  # what Celery does with every channel when the connection drops
        channel._disconnect_pools()  # closing drops them; Redis being down, none came back
        assert channel.connection is None
        yield conn, message


def test_a_late_ack_on_a_closed_channel_is_a_connection_error(
    fetched: tuple[Connection, object], redis_client: redis.Redis
) -> None:
    conn, message = fetched
    with pytest.raises(conn.connection_errors) as caught:
        message.ack()  # type: ignore[attr-defined]
    assert kombu_fixes.CLOSED_CHANNEL in str(caught.value)
    # not lost: back on its queue (the close returned it) or waiting in the unacked hash
    assert redis_client.llen(QUEUE) + redis_client.hlen("unacked") == 1


def test_ack_log_error_logs_it_instead_of_killing_the_worker(
    fetched: tuple[Connection, object], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    conn, message = fetched
    logger = logging.getLogger("test.ack")
    message.ack_log_error(logger, conn.connection_errors)  # type: ignore[attr-defined]
    assert "Couldn't ack" in caplog.text


def test_a_channel_keeps_one_redis_client_while_its_pool_lives(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """kombu built a redis.Redis per publish, ack and event: 14 % of a poll's CPU."""
    kombu_fixes.apply()
    with Connection(redis_url) as conn:
        channel = conn.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._disconnect_pools()  # a new pool (after a reconnect) gets a new client
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
        given = redis.Redis.from_url(redis_url)
        with channel.conn_or_acquire(given) as passed:
            assert passed is given
        given.close()
        channel.close()
