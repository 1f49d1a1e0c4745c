"""A file that another process still writes while it is submitted with ``--max-chars``.

The limit is checked on a first pass and the file is read again to send it (QA: rows
appended between the passes were sent, 3.2x over the limit, with exit 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clonequeue.producers.errors import ProducerError
from clonequeue.producers.sources import InputFile
from clonequeue.producers.submission import Sink, Submission, SubmitReport
from clonequeue.services import Services

CHEAP = 500  # rows of 1 billed character each (a one-character preview, no audio)


def cheap(cid: str) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3", "contentText": "a"},
    }


def dear(cid: str) -> dict[str, Any]:
    return {**cheap(cid), "clone": {**cheap(cid)["clone"], "contentText": "b" * 270}}


def append(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)


def cheap_file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text("")
    append(path, [cheap(f"c{i:05d}") for i in range(rows)])
    return path


def submission(path: Path, services: Services, batch: str, **kwargs: Any) -> Submission:
    source = InputFile.from_arg(str(path))
    return Submission(source, services=services, batch=batch, parallel=False, **kwargs)


def test_a_file_that_grows_between_the_check_and_the_send_is_refused(
    tmp_path: Path, services: Services
) -> None:
    path = cheap_file(tmp_path, CHEAP)

    class GrowsAfterTheCheck(Submission):
        def _lookup_sink(self) -> Sink:
            sink = super()._lookup_sink()
            finish = sink.finish

            def grow() -> None:  # the end of the first pass: a writer appends
                finish()
                append(path, [dear(f"d{i}") for i in range(50)])

            sink.finish = grow  # type: ignore[method-assign]
            return sink

    run = GrowsAfterTheCheck(
        InputFile.from_arg(str(path)),
        services=services,
        batch="grew",
        parallel=False,
        max_chars=CHEAP + 100,
    )
    with pytest.raises(
        ProducerError, match=r"changed while it was being checked \(from [\d,]+ bytes to"
    ):
        run.run()
    assert services.batches.info("grew") is None  # nothing recorded, nothing queued


def test_a_file_that_grows_while_it_is_sent_stops_before_the_limit(
    tmp_path: Path, services: Services
) -> None:
    path = cheap_file(tmp_path, 4 * CHEAP)  # several chunks: the send is under way

    def grow_once(report: SubmitReport, _position: int | None, _size: int | None) -> None:
        if report.new and not grown:
            grown.append(True)
            append(path, [dear(f"d{i}") for i in range(50)])

    grown: list[bool] = []
    run = submission(path, services, "growing", max_chars=4 * CHEAP + 100, on_progress=grow_once)
    with pytest.raises(ProducerError) as caught:
        run.run()
    message = str(caught.value)
    assert "the input changed while it was submitted" in message
    assert "more than the limit of 2,100 (--max-chars, max_chars=)" in message
    assert "submit it again into the same batch (--batch, batch=)" in message
    info = services.batches.info("growing")
    assert info is not None
    assert info.total == 4 * CHEAP  # every row checked went...
    assert services.batches.lookup([f"d{i}" for i in range(50)]) == {}  # ...none appended


def test_an_unchanged_file_goes_through_both_passes(tmp_path: Path, services: Services) -> None:
    path = cheap_file(tmp_path, 2 * CHEAP)
    report = submission(path, services, "steady", max_chars=2 * CHEAP).run()
    assert (report.new, report.estimate.total_chars) == (2 * CHEAP, 2 * CHEAP)


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_errors_file_that_is_the_input_is_refused_before_anything_is_read(
    tmp_path: Path, services: Services, dry_run: bool
) -> None:
    """QA: ``submit same.jsonl --errors same.jsonl`` replaced the input with its errors."""
    path = cheap_file(tmp_path, 3)
    append(path, [{"custom_id": "bad"}])
    before = path.read_bytes()
    alias = tmp_path / "sub" / ".." / "jobs.jsonl"
    (tmp_path / "sub").mkdir()
    for errors in (path, alias):
        run = submission(path, services, "same", errors_path=errors, dry_run=dry_run)
        with pytest.raises(ProducerError, match="is the input itself"):
            run.run()
    assert path.read_bytes() == before
    assert services.batches.info("same") is None
