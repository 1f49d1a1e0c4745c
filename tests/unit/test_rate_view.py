"""The per-minute figures of the adaptive rate, from totals sampled by the exporter."""

from __future__ import annotations

from clonequeue.workers.rate_view import RateHistory, RateSnapshot


def snapshot(at: float, *, calls: int, useful: int = 0, http_429: int = 0) -> RateSnapshot:
    return RateSnapshot(
        rate=40.0, learned=None, ceiling=39.2, calls=calls, useful=useful, http_429=http_429, at=at
    )


def test_a_429_seen_over_a_few_seconds_is_one_429_in_the_last_minute_not_thirty() -> None:
    history = RateHistory()
    history.add(snapshot(100.0, calls=0))
    figures = history.add(snapshot(102.0, calls=80, useful=60, http_429=1))
    assert figures.http_429_per_min == 1.0
    assert figures.useful_share == 0.75
    assert figures.calls_per_s == 40.0


def test_samples_further_apart_than_a_minute_give_a_rate_per_minute() -> None:
    history = RateHistory()
    history.add(snapshot(0.0, calls=0))
    assert history.add(snapshot(120.0, calls=4800, http_429=6)).http_429_per_min == 3.0


def test_samples_under_a_second_apart_give_no_figure_yet() -> None:
    history = RateHistory()
    history.add(snapshot(0.0, calls=0))
    figures = history.add(snapshot(0.5, calls=20, http_429=1))
    assert (figures.http_429_per_min, figures.useful_share, figures.calls_per_s) == (None,) * 3
