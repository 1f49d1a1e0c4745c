"""logs.RepeatFilter: a library's warning repeated word for word is shown once a window."""

from __future__ import annotations

import logging

from clonequeue.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, message: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args or None, None)


def test_a_repeat_within_the_window_is_counted_and_said_with_the_next_one_after_it() -> None:
    clock = Clock()
    repeats = RepeatFilter(window_s=60, clock=clock)
    name = "celery.worker.consumer.consumer"
    shown = [repeats.filter(record(name, "Cannot connect to %s", "amqp://h/v")) for _ in range(50)]
    assert shown == [True] + [False] * 49
    clock.now = 60.0
    again = record(name, "Cannot connect to %s", "amqp://h/v")
    assert repeats.filter(again)
    assert again.getMessage() == (
        "Cannot connect to amqp://h/v (49 more like it in the 60 s before, not shown)"
    )
    clock.now = 120.0
    quiet = record(name, "Cannot connect to %s", "amqp://h/v")
    assert repeats.filter(quiet)
    assert quiet.getMessage() == "Cannot connect to amqp://h/v"  # none were held back


def test_other_messages_levels_and_our_own_records_pass() -> None:
    repeats = RepeatFilter(window_s=60, clock=Clock())
    assert repeats.filter(record("kombu", "a"))
    assert repeats.filter(record("kombu", "b"))  # another message
    assert repeats.filter(record("kombu", "a", level=logging.CRITICAL))  # another level
    assert repeats.filter(record("celery.beat", "a"))  # another logger
    assert all(repeats.filter(record("kombu", "x", level=logging.INFO)) for _ in range(3))
    assert all(repeats.filter(record("clonequeue.workers", "a")) for _ in range(3))


def test_it_keeps_at_most_max_keys_messages() -> None:
    clock = Clock()
    repeats = RepeatFilter(window_s=60, clock=clock)
    for i in range(RepeatFilter.MAX_KEYS * 3):
        clock.now = i * 0.01
        assert repeats.filter(record("kombu", f"task {word(i)} failed"))
    assert len(repeats._seen) <= RepeatFilter.MAX_KEYS


def word(i: int) -> str:
    """``i`` in letters (numbers are folded: see below)."""
    letters = ""
    while True:
        i, rest = divmod(i, 26)
        letters += chr(ord("a") + rest)
        if not i:
            return letters


def test_repeats_that_differ_only_in_numbers_or_task_ids_are_repeats() -> None:
    """QA: 41 "Couldn't ack N, reason: …connection already closed" lines at CRITICAL in a
    burst, each with another delivery tag, after a broker connection was closed."""
    clock = Clock()
    repeats = RepeatFilter(window_s=60, clock=clock)
    acks = [
        repeats.filter(record("celery.worker.request", "Couldn't ack %r, reason:%r", tag, "closed"))
        for tag in range(380, 421)
    ]
    assert acks == [True] + [False] * 40
    tasks = [
        repeats.filter(record("celery.app.trace", f"Task clonequeue.poll_clone[{uid}] raised: x"))
        for uid in ("4f0c1d2e-aaaa-bbbb-cccc-000000000001", "9e8d7c6b-aaaa-bbbb-cccc-000000000002")
    ]
    assert tasks == [True, False]
    assert repeats.filter(record("celery.worker.request", "Couldn't ack %r, reason:%r", 1, "other"))
