"""What the CLI says of a Redis that is up but refuses writes (QA pass: a full AOF disk
read "cannot reach Redis … start it (`clonequeue redis`)", and a full memory only as
a raw error; then each command under MISCONF printed a paragraph, Redis's 380-character
reply in it cut mid-word)."""

from __future__ import annotations

import pytest
import redis

from clonequeue.cli.errors import EXIT_FATAL, explain
from clonequeue.redis_refusals import (
    REDIS_WORDS_MAX,
    clip,
    error_line,
    refusal_line,
    refuses_writes,
    write_refusal,
)
from clonequeue.store.unreachable import unreachable_hint, unreachable_reason

MISCONF = redis.exceptions.ResponseError(
    "MISCONF Errors writing to the AOF file: No space left on device"
)
# Redis's own reply when its snapshot failed under stop-writes-on-bgsave-error.
RDB_WORDS = (
    "MISCONF Redis is configured to save RDB snapshots, but it is currently not able to "
    "persist on disk. Commands that may modify the data set are disabled, because this "
    "instance is configured to report errors during writes if RDB snapshotting fails "
    "(stop-writes-on-bgsave-error option). Please check the Redis logs for details about "
    "the RDB error."
)
RDB_MISCONF = redis.exceptions.ResponseError(RDB_WORDS)
# The same refused to a script in a pipeline (`clonequeue cancel`), as redis-py words it.
RDB_MISCONF_IN_PIPELINE = redis.exceptions.ResponseError(
    "Command # 1 (EVALSHA b6d370ff4eb1325cbd6d1a336b8ec43e1ddc8fdb 0 qa2 1796671361.87 m1 "
    "604800 root@vm...) of pipeline caused error: Error running script (call to "
    "f_b6d370ff4eb1325cbd6d1a336b8ec43e1ddc8fdb): @user_script:291: @user_script: 291: -"
    + RDB_WORDS
)
OOM = redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
OOM_IN_SCRIPT = redis.exceptions.ResponseError(
    "Error running script (call to f_1): @user_script:307: -OOM command not allowed when used "
    "memory > 'maxmemory'."
)
RDB_FIRST_SENTENCE = RDB_WORDS.split(". ")[0] + "."


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (MISCONF, "`CONFIG GET dir` on the Redis server"),
        (RDB_MISCONF, "`CONFIG GET dir` on the Redis server"),
        (RDB_MISCONF_IN_PIPELINE, "`CONFIG GET dir` on the Redis server"),
        (OOM, "raise maxmemory"),
        (OOM_IN_SCRIPT, "raise maxmemory"),
    ],
)
def test_a_redis_that_refuses_writes_is_said_as_such(exc: Exception, says: str) -> None:
    assert refuses_writes(exc)
    line, code = explain(exc) or ("", 0)
    assert code == EXIT_FATAL
    assert line == refusal_line(exc)  # the words a read command warns with
    assert says in line
    assert "refuses writes until" in line
    assert "nothing is lost" in line
    assert "start it" not in line
    assert "\n" not in line


def test_redis_words_are_cut_at_a_sentence_end() -> None:
    for exc in (RDB_MISCONF, RDB_MISCONF_IN_PIPELINE):
        line = refusal_line(exc) or ""
        assert line.endswith(f"(Redis: {RDB_FIRST_SENTENCE} …)")
        assert "report er" not in line  # the old cut, mid-word
        assert "EVALSHA" not in line  # the pipeline's wrapping is not Redis's words
        assert len(line) < len(write_refusal(exc) or "") + REDIS_WORDS_MAX + 20


def test_short_redis_words_are_given_whole() -> None:
    assert (refusal_line(MISCONF) or "").endswith(
        "(Redis: MISCONF Errors writing to the AOF file: No space left on device)"
    )
    assert (refusal_line(OOM_IN_SCRIPT) or "").endswith(
        "(Redis: OOM command not allowed when used memory > 'maxmemory'.)"
    )
    # redis-py's OutOfMemoryError drops the OOM word: its text is given as it is
    assert (refusal_line(OOM) or "").endswith(f"(Redis: {OOM})")


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [
        ("short enough", 12, "short enough"),
        ("cut at a word boundary", 12, "cut at a…"),
        ("cut at a word boundary", 13, "cut at a word…"),  # the space after the limit
        ("a list, then more", 9, "a list…"),  # no comma before the ellipsis
        (
            "One. Then the first sentence ends here. And more",
            45,
            "One. Then the first sentence ends here. …",
        ),
        ("One. Then a sentence too short to keep", 29, "One. Then a sentence too…"),
        ("averyveryverylongtoken", 10, "averyvery…"),
    ],
)
def test_clip(text: str, limit: int, clipped: str) -> None:
    assert clip(text, limit) == clipped


def test_other_errors_are_not_refusals() -> None:
    wrongtype = redis.exceptions.ResponseError("WRONGTYPE Operation against a key\nmore")
    assert write_refusal(wrongtype) is None
    assert refusal_line(wrongtype) is None
    assert explain(wrongtype) == ("Redis error: WRONGTYPE Operation against a key", EXIT_FATAL)
    assert not refuses_writes(redis.exceptions.ResponseError("ERR unknown command"))
    assert refuses_writes(redis.exceptions.ConnectionError("refused"))
    line, _ = explain(redis.exceptions.ConnectionError("refused")) or ("", 0)
    assert "is running and reachable from here" in line  # what to do next


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (redis.exceptions.ConnectionError("  refused\nsecond line  "), "refused"),
        (redis.exceptions.ConnectionError(""), "ConnectionError"),
        (redis.exceptions.AuthenticationError("   "), "AuthenticationError"),
    ],
)
def test_an_error_in_one_line_is_the_same_for_the_store_and_the_cli(
    exc: Exception, line: str
) -> None:
    assert error_line(exc) == line
    assert unreachable_reason(exc) == line
    assert explain(exc) == (
        f"cannot reach Redis ({type(exc).__name__}: {line}); check that the Redis "
        "CLONEQUEUE_REDIS_URL names is running and reachable from here, or set "
        "CLONEQUEUE_REDIS_URL (to try things: `clonequeue redis` runs one on 6390)",
        EXIT_FATAL,
    )


def test_a_sentinel_master_that_does_not_answer_is_said_as_a_possible_failover() -> None:
    """QA: during a failover a plain `status` said to check that the Redis runs, and to
    try `clonequeue redis` on 6390, which helps no one on Sentinel."""
    refused = redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.5:6379.")
    said = unreachable_hint(refused, sentinel=True)
    assert said.startswith("the master the sentinels named does not answer: a failover")
    assert "6390" not in said
    assert "clonequeue redis" in unreachable_hint(refused)  # a plain Redis URL


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            redis.exceptions.AuthenticationError(
                "invalid username-password pair or user is disabled."
            ),
            "Redis answers but refuses the login: check the password",
        ),
        (
            redis.exceptions.AuthenticationError(
                "HELLO must be called with the client already authenticated"
            ),
            "Redis answers but refuses the login",
        ),
        (redis.exceptions.ConnectionError("DB index is out of range"), "has no such database"),
    ],
)
def test_a_redis_that_answers_but_refuses_the_url_says_what_to_fix(
    error: Exception, said: str
) -> None:
    """QA: a wrong password or database number was told to check that Redis runs."""
    hint = unreachable_hint(error)
    assert hint.startswith(said) or said in hint
    assert "6390" not in hint
