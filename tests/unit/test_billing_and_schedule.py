from __future__ import annotations

import random

import pytest

from clonequeue.api.billing import CostEstimate, billed_chars, preview_chars
from clonequeue.constants import DEFAULT_PREVIEW_TEXT
from clonequeue.jobspec import JobSpec
from clonequeue.workers.schedule import poll_delay, retry_delay


def test_billed_chars_are_code_points_without_pause_markers() -> None:
    assert billed_chars("Hello <#0.5#> world") == len("Hello  world")
    assert billed_chars("你好<#1#>世界") == 4
    assert billed_chars("😀") == 1  # one code point, four UTF-8 bytes


def test_default_preview_line_is_billed_when_text_omitted() -> None:
    assert preview_chars(None) == len(DEFAULT_PREVIEW_TEXT)
    assert preview_chars("Hi") == 2


def test_job_cost_separates_preview_and_production() -> None:
    spec = JobSpec.model_validate(
        {
            "custom_id": "a",
            "clone": {"fileUrl": "https://ex.com/a.mp3", "contentText": "abc"},
            "audios": [{"contentText": "Hello <#1#>!"}, {"contentText": "xy"}],
        }
    )
    assert spec.cost() == CostEstimate(preview_chars=3, production_chars=9, clones=1, audios=2)
    assert (spec.cost() + spec.cost()).total_chars == 24


def test_poll_delay_grows_from_min_to_max_and_stays_inside() -> None:
    rng = random.Random(1)
    kwargs = {"min_s": 5.0, "max_s": 10.0, "factor": 1.5, "jitter": 0.1, "rng": rng}
    delays = [poll_delay(n, **kwargs) for n in range(8) for _ in range(200)]
    assert all(5.0 <= d <= 10.0 for d in delays)
    first = [poll_delay(0, **kwargs) for _ in range(500)]
    assert min(first) >= 5.0
    assert max(first) <= 5.5
    assert len({round(d, 3) for d in first}) > 100  # spread, not one value


def test_poll_delay_after_the_first_is_exact() -> None:
    kwargs = {"min_s": 5.0, "max_s": 10.0, "factor": 1.5, "jitter": 0.1}
    assert [poll_delay(n, **kwargs) for n in range(1, 5)] == [7.5, 10, 10, 10]


def test_long_task_is_polled_at_most_one_time_more_than_every_max_interval() -> None:
    """A 60 s task: 7 polls against the 6 of polling every 10 s from the start."""
    kwargs = {"min_s": 5.0, "max_s": 10.0, "factor": 1.5, "jitter": 0.1, "rng": random.Random(4)}
    elapsed, polls = 0.0, 0
    while elapsed < 60:
        elapsed += poll_delay(polls, **kwargs)
        polls += 1
    assert polls == 7


def test_retry_delay_doubles_with_jitter_and_a_cap() -> None:
    rng = random.Random(2)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 300)]:
        delay = retry_delay(attempt, base_s=2, max_s=300, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_delay_honours_retry_after() -> None:
    assert retry_delay(1, base_s=2, max_s=300, retry_after_s=30, rng=random.Random(3)) >= 30


@pytest.mark.parametrize("attempt", [0, 1])
def test_first_retry_is_short(attempt: int) -> None:
    assert retry_delay(attempt, base_s=2, max_s=300) <= 2


def test_first_poll_delay_uses_what_the_batch_learned_within_bounds() -> None:
    from clonequeue.workers.schedule import first_poll_delay

    kwargs = {"min_s": 5.0, "max_s": 60.0, "jitter": 0.0}
    assert first_poll_delay(None, **kwargs) == 5.0
    assert first_poll_delay(22.5, **kwargs) == 22.5
    assert first_poll_delay(2.0, **kwargs) == 5.0
    assert first_poll_delay(300.0, **kwargs) == 60.0
    jittered = first_poll_delay(20.0, min_s=5.0, max_s=60.0, jitter=0.1, rng=random.Random(9))
    assert 20.0 <= jittered <= 22.0


def test_first_poll_delay_moves_to_the_slow_end_while_calls_are_scarce() -> None:
    from clonequeue.workers.schedule import first_poll_delay

    # steps._cadence_min_s passes the slow end (10 s) as min_s while calls are scarce
    kwargs = {"min_s": 10.0, "max_s": 60.0, "jitter": 0.0}
    assert first_poll_delay(None, **kwargs) == 10.0  # unlearned: not 5 s
    assert first_poll_delay(7.0, **kwargs) == 10.0
    assert first_poll_delay(22.5, **kwargs) == 22.5  # a learned later poll stays
    assert first_poll_delay(None, min_s=10.0, max_s=8.0, jitter=0.0) == 8.0
