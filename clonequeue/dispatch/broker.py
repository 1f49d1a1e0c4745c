"""What is on the broker: queue depths (Flower has no such metric, flower #1191)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def queue_depths(app: Any, queue_names: Iterable[str]) -> dict[str, int]:
    """Messages waiting per queue; works for Redis and RabbitMQ through kombu."""
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        if _is_redis(channel):
            return _redis_depths(channel, list(queue_names))
        for name in queue_names:
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:  # 404: declared by no one yet
                depths[name] = 0
                channel = connection.channel()  # RabbitMQ closes a channel on a 404
    return depths


def _is_redis(channel: Any) -> bool:
    from kombu.transport.redis import Channel as RedisChannel

    return isinstance(channel, RedisChannel)


def _redis_depths(channel: Any, queue_names: list[str]) -> dict[str, int]:
    """LLEN of each queue's priority lists, without MULTI.

    kombu's passive declare reads them in a transaction, and a Redis at `maxmemory`
    refuses every command queued in MULTI, reads included: the depths went blank just
    when an operator needs them (the exporter's gauges, the watchdog's backlog check).
    """
    keys = {
        name: [channel._q_for_pri(name, pri) for pri in channel.priority_steps]
        for name in queue_names
    }
    with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
        for name in queue_names:
            for key in keys[name]:
                pipe.llen(key)
        lengths = iter(pipe.execute())
    return {name: sum(int(next(lengths)) for _ in keys[name]) for name in queue_names}
