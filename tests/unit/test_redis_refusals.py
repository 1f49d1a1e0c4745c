"""What the CLI says of a Redis that is up but refuses writes (QA pass: a full AOF disk
read "cannot reach Redis … start it (`clonequeue redis`)", and a full memory only as
a raw error)."""

from __future__ import annotations

import pytest
import redis

from clonequeue.cli.errors import EXIT_FATAL, explain
from clonequeue.redis_refusals import refuses_writes, write_refusal

MISCONF = redis.exceptions.ResponseError(
    "MISCONF Errors writing to the AOF file: No space left on device"
)
OOM = redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
OOM_IN_SCRIPT = redis.exceptions.ResponseError(
    "Error running script (call to f_1): @user_script:307: -OOM command not allowed when used "
    "memory > 'maxmemory'."
)


@pytest.mark.parametrize(
    ("exc", "says"),
    [(MISCONF, "free disk space"), (OOM, "raise maxmemory"), (OOM_IN_SCRIPT, "raise maxmemory")],
)
def test_a_redis_that_refuses_writes_is_said_as_such(exc: Exception, says: str) -> None:
    assert refuses_writes(exc)
    line, code = explain(exc) or ("", 0)
    assert code == EXIT_FATAL
    assert says in line
    assert "nothing is lost" in line
    assert "start it" not in line


def test_other_errors_are_not_refusals() -> None:
    assert (
        write_refusal(redis.exceptions.ResponseError("WRONGTYPE Operation against a key")) is None
    )
    assert not refuses_writes(redis.exceptions.ResponseError("ERR unknown command"))
    assert refuses_writes(redis.exceptions.ConnectionError("refused"))
    line, _ = explain(redis.exceptions.ConnectionError("refused")) or ("", 0)
    assert "start it" in line
