"""Counts read right when they are 1: "1 job", never "1 jobs"."""

from __future__ import annotations

from clonequeue.api.billing import CostEstimate
from clonequeue.cli import progress
from clonequeue.cli.progress import summary
from clonequeue.cli.submit_cmd import describe_report
from clonequeue.producers import estimate as estimates
from clonequeue.producers.csv_reading import _row_problem
from clonequeue.producers.rows import RowError
from clonequeue.producers.submission import SubmitReport, describe_rejected
from clonequeue.store.batches import BatchInfo
from clonequeue.wording import plural


def test_plural() -> None:
    assert plural(1, "job") == "1 job"
    assert plural(0, "job") == "0 jobs"
    assert plural(2, "job") == "2 jobs"
    assert plural(1_200, "row") == "1,200 rows"
    assert plural(1, "delivery", "deliveries") == "1 delivery"
    assert plural(3, "delivery", "deliveries") == "3 deliveries"


def test_one_row_one_job_one_submission() -> None:
    report = SubmitReport("b1", rows=1, new=1, estimate=CostEstimate(76, 0, 1, 0))
    assert describe_report(report) == (
        "1 row: accepted 1 (new 1), rejected 0\n"
        "estimate: 76 characters billed (76 preview + 0 production) in 1 submission "
        "(1 clone, 0 production audios)"
    )
    assert estimates.describe(CostEstimate(0, 1, 0, 1)) == (
        "1 character billed (0 preview + 1 production) in 1 submission "
        "(0 clones, 1 production audio)"
    )
    counts = {s: 0 for s in progress.STATE_ORDER} | {"pending": 1}
    assert summary(BatchInfo("b1", 0.0, None, 1, counts)) == "1 job: pending 1"


def test_one_rejected_row_of_one_and_one_cell() -> None:
    error = RowError(1, "b1", ["clone: is required"], {})
    report = SubmitReport("b1", rows=1, rejected=1, errors=[error])
    assert describe_rejected(report) == "1 of 1 row rejected: line 1 (b1): clone: is required"
    assert _row_problem(["x"], ["custom_id", "fileUrl"]) == (
        "has 1 cell but the header has 2 columns"
    )
