"""A connection whose health check takes a Redis that refuses writes for a live one.

redis-py PINGs a connection before a command when it sat idle (``health_check_interval``)
and right after connecting. A Redis out of memory (``noeviction``) or unable to write its
AOF (``MISCONF``) refuses PING too, so every command failed, reads included: ``status``,
``batches`` and ``results`` showed nothing while the disk was full, though Redis still
served reads. An error reply proves the connection alive; that is all the check asks.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.utils import str_if_bytes

from clonequeue.redis_refusals import write_refusal


class _AliveWhenRefusingWrites:
    """Mixin for a redis-py connection class (overrides its health-check PING)."""

    def _send_ping(self: Any) -> None:
        self.send_command("PING", check_health=False)
        try:
            reply = self.read_response()
        except redis.exceptions.ResponseError as exc:
            if write_refusal(exc) is None:
                raise
            return  # it answered: up, refusing writes only
        if str_if_bytes(reply) != "PONG":
            raise redis.exceptions.ConnectionError("Bad response from PING health check")


@cache
def tolerant(base: type[Connection]) -> type[Connection]:
    """``base`` with the tolerant health check."""
    return type(f"WriteRefusalTolerant{base.__name__}", (_AliveWhenRefusingWrites, base), {})


def connection_class_for(url: str) -> type[Connection]:
    """The tolerant class of the connection redis-py would use for ``url``'s scheme."""
    scheme = urlsplit(url).scheme
    if scheme == "unix":
        return tolerant(UnixDomainSocketConnection)
    return tolerant(SSLConnection if scheme == "rediss" else Connection)
