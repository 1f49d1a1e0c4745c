"""What an operator sees: the live batch view and the submit summary."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from clonequeue.api.billing import CostEstimate
from clonequeue.cli import progress
from clonequeue.cli.progress import BatchWatch, summary
from clonequeue.cli.submit_cmd import describe_report
from clonequeue.producers.submission import SubmitReport
from clonequeue.store.batches import BatchInfo


def info(**counts: int) -> BatchInfo:
    return BatchInfo("march", 0.0, None, 100, {s: counts.get(s, 0) for s in progress.STATE_ORDER})


def test_live_view_shows_counts_progress_rate_eta_and_the_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    watch = BatchWatch(enabled=False)
    watch.update(info(pending=100))
    now[0] = 10.0
    watch.update(info(pending=80, completed=15, failed=5))
    assert watch.rate() == pytest.approx(2.0)  # 20 finished in 10 s
    console = Console(width=120, record=True)
    paused = {"kind": "balance", "reason": "insufficient balance"}
    console.print(watch._render(info(pending=80, completed=15, failed=5), 2.0, paused))
    text = console.export_text()
    assert "20/100 finished (20%)" in text
    assert "2.0 jobs/s   ETA 40s" in text
    assert "creates paused: insufficient balance" in text
    assert "completed" in text
    assert " 15 " in text


def test_plain_lines_when_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = BatchWatch(enabled=True)
    assert not watch.tty
    watch.update(info(pending=50, completed=50))  # within PLAIN_EVERY_S: nothing yet
    watch.update(info(completed=100))  # finished: always a line
    assert capsys.readouterr().err == "march: 100 jobs: completed 100\n"


def test_summary_names_states_in_pipeline_order() -> None:
    assert summary(info(failed=2, pending=3, completed=95)) == (
        "100 jobs: pending 3, completed 95, failed 2"
    )


def test_submit_summary_says_what_became_of_every_row() -> None:
    report = SubmitReport(
        "b1",
        rows=10,
        new=5,
        already_submitted=3,
        already_in=Counter({"march": 2, "april": 1}),
        repeats=1,
        rejected=1,
        estimate=CostEstimate(76, 100, 5, 5),
    )
    assert describe_report(report) == (
        "10 rows: accepted 9 (new 5; already submitted 3 in batch march (2), april (1); "
        "repeated in the input 1 (skipped)), rejected 1\n"
        "estimate: 176 characters billed (76 preview + 100 production) in 10 submissions "
        "(5 clones, 5 production audios)"
    )


def test_a_slow_batch_shows_its_rate_in_jobs_a_minute() -> None:
    """QA: "0.0 jobs/s   ETA 1h59m": a rate rounded to nothing beside an ETA made of it."""
    from clonequeue.cli.progress import jobs_per_s

    assert jobs_per_s(0.0165) == "1.0 jobs/min"
    assert jobs_per_s(2.0) == "2.0 jobs/s"
    assert jobs_per_s(0.0) == "0.0 jobs/s"
