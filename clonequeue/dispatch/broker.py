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
        for name in queue_names:
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:  # 404: declared by no one yet, or (Redis) empty
                depths[name] = 0
                channel = connection.channel()  # RabbitMQ closes a channel on a 404
    return depths
