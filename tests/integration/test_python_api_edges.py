"""The Python API where it used to mislead a pipeline (a QA pass), on the suite's Redis.

A ``Batch`` that was never created says why; a forced purge with a wrong type purges
nothing; ``max_chars`` and ``retry`` speak Python, not CLI flags; a generator already
read says it may have been consumed.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

import clonequeue
from clonequeue.producers.errors import BatchNotFoundError, EstimateTooHighError
from clonequeue.services import Services
from tests.integration.test_producers_submit import lose_worker_after_create


def row(cid: str) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3"},
        "audios": [{"contentText": f"Hello there {cid}"}],
    }


# --- 1. a Batch that does not exist says why, from its submission ---------------------------


def test_rows_all_in_several_other_batches_say_which_to_follow(services: Services) -> None:
    clonequeue.submit([row(f"a{i}") for i in range(4)], batch="A", services=services)
    clonequeue.submit([row(f"b{i}") for i in range(2)], batch="B", services=services)
    rows = [row(f"a{i}") for i in range(4)] + [row(f"b{i}") for i in range(2)]
    batch = clonequeue.submit(rows, batch="h3-multi", services=services)
    assert batch == "h3-multi"  # the return type is kept: the id asked for
    expected = (
        "no batch 'h3-multi': it was not created, as every row was submitted before, in "
        "batches A (4 rows) and B (2 rows): follow those, e.g. clonequeue.Batch('A')"
    )
    for call in (batch.status, lambda: batch.wait(timeout=1), lambda: list(batch.results())):
        with pytest.raises(BatchNotFoundError) as info:
            call()
        assert str(info.value) == expected
        assert info.value.batch_id == "h3-multi"
    # the one-holder case is unchanged: that batch is returned, and it exists
    one = clonequeue.submit([row("b0")], batch="h3-one", services=services)
    assert (one, one.status().total) == ("B", 2)


def test_a_dry_run_batch_says_a_dry_run_creates_none(services: Services) -> None:
    batch = clonequeue.submit([row("d1")], batch="dry", services=services, dry_run=True)
    with pytest.raises(BatchNotFoundError) as info:
        batch.status()
    assert str(info.value) == (
        "no batch 'dry': a dry run creates no batch (nothing was sent); submit without "
        "dry_run=True to create it"
    )
    # a dry run into a batch that exists follows it as ever
    clonequeue.submit([row("d2")], batch="real", services=services)
    again = clonequeue.submit([row("d3")], batch="real", services=services, dry_run=True)
    assert again.status().total == 1


def test_a_batch_purged_after_its_submission_keeps_the_usual_message(services: Services) -> None:
    batch = clonequeue.submit([row("p1")], batch="gone", services=services)
    batch.cancel()
    batch.purge()
    with pytest.raises(BatchNotFoundError, match=r"no batch 'gone' \(see `clonequeue batches`"):
        batch.status()


# --- 3. a wrong type is refused before anything happens ---------------------------------------


def test_purge_with_force_of_a_wrong_type_purges_nothing(services: Services) -> None:
    batch = clonequeue.submit([row("f1")], batch="keep", services=services)
    with pytest.raises(TypeError, match=r"Batch\.purge\(force=\.\.\.\): expected True or False"):
        batch.purge(force="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Batch\.retry\(unknown=\.\.\.\)"):
        batch.retry(unknown="no")  # type: ignore[arg-type]
    status = batch.status()
    assert (status.total, status.counts["pending"]) == (1, 1)


def test_wait_at_the_smallest_poll_interval_still_works(services: Services) -> None:
    batch = clonequeue.submit([row("w1")], batch="w", services=services)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        batch.wait(timeout=0.2, poll_interval=0.05)
    assert time.monotonic() - started < 2
    with pytest.raises(TimeoutError):
        batch.wait(timeout=0)  # 0 is one look, then the answer


# --- 4/5. messages name the Python arguments ---------------------------------------------------


def test_over_max_chars_names_the_python_argument(services: Services) -> None:
    with pytest.raises(EstimateTooHighError) as info:
        clonequeue.submit([row("m1"), row("m2")], batch="m", services=services, max_chars=10)
    assert "more than max_chars=10;" in str(info.value)
    assert "--max-chars" not in str(info.value)
    assert info.value.limit_chars == 10
    assert services.batches.info("m") is None


def test_an_unfinished_purge_names_force_in_python_words(services: Services) -> None:
    """Python names ``force=True``; the CLI's ``purge`` says ``--force`` (test_cli_first_tries)."""
    batch = clonequeue.submit([row("u1")], batch="uf", services=services)
    with pytest.raises(clonequeue.ProducerError) as info:
        batch.purge()
    assert str(info.value) == (
        "batch uf has 1 unfinished job; wait, or purge with force=True, "
        "which cancels the batch first"
    )


# --- 7. an iterator read already (by estimate()) says so -------------------------------------


def test_a_generator_consumed_by_estimate_says_it_may_have_been(services: Services) -> None:
    rows = (row(f"g{i}") for i in range(3))
    assert clonequeue.estimate(rows).rows == 3
    with pytest.raises(clonequeue.NothingSubmittedError) as info:
        clonequeue.submit(rows, batch="g", services=services)
    assert str(info.value) == (
        "the input holds no job: rows is a generator that yielded nothing, and an iterator "
        "can be read once, so it may have been consumed already (e.g. by estimate()); pass "
        "a list, or a fresh generator from its function; nothing was submitted and batch g "
        "was not created"
    )
    # an empty list is just empty
    with pytest.raises(clonequeue.NothingSubmittedError, match=r"it is empty, or has only blank"):
        clonequeue.submit([], batch="g", services=services)
    assert services.batches.info("g") is None


# --- 8. retry says how many unknown jobs it left, and how to send them -----------------------


def test_retry_without_unknown_says_how_many_it_left(services: Services) -> None:
    batch = clonequeue.submit([row(f"u{i}") for i in range(3)], batch="ru", services=services)
    for i in range(2):
        lose_worker_after_create(services, f"u{i}")
    outcome = batch.retry()
    assert (outcome.jobs, outcome.unknown_left) == (0, 2)
    # ...and that even then their worker may only be frozen: left until
    # CLONEQUEUE_UNKNOWN_SETTLE_S has passed (a retry of unknown work used to be advised)
    assert outcome.note is not None
    assert re.fullmatch(
        r"2 jobs unknown, not retried: a create went out and no answer we could take came back, "
        r"so each "
        r"may exist and be billed already; batch\.retry\(unknown=True\) sends them again "
        r"\(they may be billed twice\); not before \d\d:\d\d:\d\d UTC: the worker that sent "
        r"their creates did not store the answer within its lease and may only be frozen "
        r"\(a stopped process, a paused VM\), so its answer may still come \(force=True "
        r"sends them now\)",
        outcome.note,
    ), outcome.note
    assert (outcome.settling, outcome.settle_note) == (2, None)  # said once, in the note
    assert "unknown_left=2" in repr(outcome)
    # their worker may only be frozen: left until CLONEQUEUE_UNKNOWN_SETTLE_S has passed
    waiting = batch.retry(unknown=True)
    assert (waiting.jobs, waiting.settling) == (0, 2)
    assert waiting.settle_note is not None
    assert waiting.settle_note.startswith("2 unknown jobs left until ")
    assert waiting.settle_note.endswith("Retry then, or with force=True to send them now")
    sent = batch.retry(unknown=True, force=True)
    assert (sent.jobs, sent.unknown_left, sent.note, sent.settling) == (2, 0, None, 0)


# --- 9. results() never ends early without a word --------------------------------------------


def test_results_whose_records_go_mid_read_raise_instead_of_ending_early(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge (or a Redis restarted without its data) while a pipeline read the results
    ended the stream early, as if the batch had been read whole (QA pass: 2,000 of 4,995)."""
    monkeypatch.setattr("clonequeue.store.batches.READ_CHUNK", 4)
    batch = clonequeue.submit([row(f"g{i}") for i in range(10)], batch="gone", services=services)
    records = batch.results()
    assert [next(records)["custom_id"] for _ in range(3)] == ["g0", "g1", "g2"]
    clonequeue.Batch("gone", services=services).purge(force=True)
    with pytest.raises(BatchNotFoundError) as raised:
        list(records)
    assert str(raised.value) == (
        "no batch 'gone': only 4 of its 10 job records could be read: the batch is gone "
        "(purged, or a Redis that restarted without its data lost them)"
    )
    # a whole read says nothing
    whole = clonequeue.submit([row(f"w{i}") for i in range(10)], batch="whole", services=services)
    assert len(list(whole.results())) == 10


def test_rows_that_raise_mid_submit_say_which_batch_holds_what_was_recorded(
    services: Services,
) -> None:
    """A generator that raised half-way propagated bare: the jobs recorded before it would
    be billed, and the caller of submit(batch=None) never learned the batch id (QA pass)."""

    def rows() -> Any:  # two chunks of 500 are recorded before it raises
        for i in range(1100):
            if i == 1050:
                raise RuntimeError("upstream DB went away")
            yield row(f"r{i}")

    with pytest.raises(RuntimeError, match="upstream DB went away") as raised:
        clonequeue.submit(rows(), batch="half", services=services)
    assert raised.value.__notes__ == [
        "clonequeue: 1,000 new jobs were recorded in batch half before this error, and will be "
        "sent; submit the same rows to that batch again to send the rest (rows already "
        "recorded are skipped, not sent twice)"
    ]
    assert services.batches.info("half").total == 1000  # type: ignore[union-attr]


def test_results_of_a_batch_with_settings_read_where_the_settings_say(services: Services) -> None:
    """results(batch, settings=...) ignored the settings when given a Batch (QA pass)."""
    batch = clonequeue.submit([row("s1")], batch="where", services=services)
    elsewhere = services.settings.model_copy(update={"namespace": "elsewhere"})
    with pytest.raises(BatchNotFoundError, match="no batch 'where'"):
        list(clonequeue.results(batch, settings=elsewhere))
    assert [r["custom_id"] for r in clonequeue.results(batch)] == ["s1"]


@pytest.mark.parametrize("how", ["cancelled", "purged"])
def test_a_submit_stops_when_its_batch_is_cancelled_or_purged_meanwhile(
    services: Services, how: str
) -> None:
    """QA: a cancel during a 40,000-row submit left the 19,000 rows recorded after it
    pending (sent on `resume`); a purge brought the batch back with the rows after it,
    and the submit blamed a failover ("Redis lost 25,000 jobs"). Nothing is recorded
    after either; the submit says which, and what to do."""

    def rows() -> Any:  # the batch changes after the first chunk of 500 was recorded
        for i in range(1500):
            if i == 700:
                closing = clonequeue.Batch("racing", services=services)
                closing.cancel(by="test") if how == "cancelled" else closing.purge(force=True)
            yield row(f"x{i}")

    with pytest.raises(
        clonequeue.ClonequeueError, match=f"batch racing was {how} while this submit ran"
    ) as raised:
        clonequeue.submit(rows(), batch="racing", services=services)
    assert not getattr(raised.value, "__notes__", None)  # not "will be sent; submit again"
    info = services.batches.info("racing")
    if how == "cancelled":
        assert info is not None
        assert (info.total, info.counts["cancelled"], info.counts["pending"]) == (500, 500, 0)
        # taking the cancel back lets the same submit record the rest
        clonequeue.Batch("racing", services=services).retry(cancelled=True)
        again = clonequeue.submit([row(f"x{i}") for i in range(1500)], batch="racing",
                                  services=services)  # fmt: skip
        assert services.batches.info(again).total == 1500  # type: ignore[union-attr]
    else:
        assert info is None  # not brought back
        later = clonequeue.submit([row("y1")], batch="racing", services=services)
        assert services.batches.info(later).total == 1  # type: ignore[union-attr]  # a new submit may
