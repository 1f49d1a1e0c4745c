"""The submission engine without Redis: repeats, estimates, limits, streaming, exports, API."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue.api.billing import CostEstimate
from clonequeue.producers import estimate as estimates
from clonequeue.producers.dedupe import SeenBefore, SeenIds
from clonequeue.producers.errors import EstimateTooHighError
from clonequeue.producers.export import CSV_COLUMNS, csv_rows, job_row, neutralised, write_csv
from clonequeue.producers.rows import RowError
from clonequeue.producers.sources import IterableSource
from clonequeue.producers.submission import Submission, SubmitReport


def row(cid: str, text: str = "Hello there", audios: int = 1) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3", "contentText": "Preview"},
        "audios": [{"contentText": f"{text} <#0.5#> {i}"} for i in range(audios)],
    }


def test_seen_ids_remembers_first_lines_across_and_within_chunks(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "seen.db")
    assert seen.check([("a", "h1", 1), ("b", "h2", 2), ("a", "h1", 3)]) == [
        None,
        None,
        SeenBefore(1, same_content=True),
    ]
    assert seen.check([("b", "other", 7), ("c", "h3", 8)]) == [
        SeenBefore(2, same_content=False),
        None,
    ]
    seen.close()


def test_repeats_are_skipped_and_conflicting_repeats_rejected() -> None:
    rows = [row("a"), row("b"), row("a"), row("b", text="Different"), row("c")]
    errors: list[str] = []
    fields: list[str | None] = []

    def on_error(error: RowError) -> None:
        errors.append(str(error))
        fields.append(error.field)

    report = Submission(IterableSource(rows), services=None, on_error=on_error).run()
    assert (report.rows, report.new, report.repeats, report.rejected) == (5, 3, 1, 1)
    assert errors == [
        "line 4 (b): custom_id: already used by line 2 with different content; "
        "give each job its own custom_id"
    ]
    assert fields == ["custom_id"]  # the field is named, as for any other rule


def test_estimate_counts_preview_and_production_separately() -> None:
    rows = [row("a", audios=2), {"custom_id": "b", "clone": {"fileUrl": "https://v.ex.com/b.wav"}}]
    report = Submission(IterableSource(rows), services=None).run()
    # "Preview" (7) + the default preview line (76); "Hello there  0" without its marker (14) x2
    assert report.estimate == CostEstimate(
        preview_chars=7 + 76, production_chars=2 * 14, clones=2, audios=2
    )
    assert estimates.describe(report.estimate) == (
        "111 characters billed (83 preview + 28 production) in 4 submissions "
        "(2 clones, 2 production audios)"
    )


def test_max_chars_refuses_an_estimate_above_it() -> None:
    rows = [row(f"r{i}") for i in range(3)]
    with pytest.raises(EstimateTooHighError, match="would bill 63 characters, more than"):
        Submission(IterableSource(rows), services=None, max_chars=62).run()
    report = Submission(IterableSource(rows), services=None, max_chars=63).run()
    assert report.estimate.total_chars == 63


def test_rows_are_streamed_not_collected_first() -> None:
    """Progress is reported while the generator still has rows to give."""
    produced = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal produced
        for i in range(1200):
            produced += 1
            yield row(f"s{i}")

    seen_while_reading: list[tuple[int, int]] = []

    def progress(report: SubmitReport, _position: int | None, _size: int | None) -> None:
        seen_while_reading.append((report.rows, produced))

    Submission(IterableSource(rows()), services=None, on_progress=progress).run()
    assert seen_while_reading[0] == (500, 500)  # one chunk in, one chunk read
    assert seen_while_reading[-1] == (1200, 1200)


def test_rows_that_are_not_dicts_are_rejected_not_fatal() -> None:
    errors: list[str] = []
    report = Submission(
        IterableSource([row("a"), "not a row", 42]),  # type: ignore[list-item]
        services=None,
        on_error=lambda e: errors.append(str(e)),
    ).run()
    assert report.new == 1
    assert errors == [
        "line 2: a row must be a dict (or JobSpec), not str",
        "line 3: a row must be a dict (or JobSpec), not int",
    ]


def test_result_csv_has_one_row_per_audio_and_one_for_a_job_without() -> None:
    record = {
        "custom_id": "a",
        "batch": "b",
        "status": "failed",
        "modelId": "model_1",
        "audioUrl": "https://x/p.mp3",
        "audios": [
            {"custom_id": "a-1", "status": "completed", "audioUrl": "https://x/1.mp3"},
            {
                "custom_id": "a-2",
                "status": "failed",
                "error": {"kind": "remote", "msg": "bad", "code": 500},
            },
        ],
        "error": {"kind": "remote", "msg": "1 of 2 audios failed"},
        "attempts": 1,
        "retries": 0,
    }
    rows = csv_rows(record)
    assert [(r["audio_custom_id"], r["audio_status"]) for r in rows] == [
        ("a-1", "completed"),
        ("a-2", "failed"),
    ]
    assert rows[1]["audio_error_code"] == 500
    assert csv_rows({"custom_id": "z", "status": "completed", "audios": []})[0]["custom_id"] == "z"
    out = io.StringIO()
    assert write_csv([record], out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 3


def test_artifact_copies_are_columns_of_the_csv_and_of_each_parquet_row() -> None:
    stored = {"state": "stored", "url": "file:///v/b/j/preview.wav", "bytes": 9, "sha256": "ab"}
    record = {
        "custom_id": "j",
        "status": "completed",
        "artifact": stored,
        "audios": [
            {
                "custom_id": "a",
                "status": "completed",
                "artifact": {"state": "failed", "error": "HTTP 404"},
                "subtitleArtifact": {"state": "stored", "url": "file:///v/b/j/a.srt"},
            }
        ],
    }
    (row,) = csv_rows(record)
    assert (row["artifact_state"], row["artifact_url"]) == ("stored", stored["url"])
    assert (row["audio_artifact_state"], row["audio_artifact_url"]) == ("failed", None)
    assert row["audio_subtitleArtifact_url"] == "file:///v/b/j/a.srt"
    parquet = job_row(record)
    assert parquet["artifact_url"] == stored["url"]
    assert parquet["audios"][0]["subtitleArtifact_url"] == "file:///v/b/j/a.srt"
    plain = csv_rows({"custom_id": "k", "status": "completed", "audios": []})[0]
    assert plain["artifact_state"] is None  # no store: empty cells


def test_public_api_is_pinned() -> None:
    assert set(clonequeue.__all__) >= {"Batch", "submit", "results", "JobSpec", "Settings"}
    assert clonequeue.Batch.__module__ == "clonequeue.batch"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_run_as_formulas_start_with_a_quote(start: str) -> None:
    record = {
        "custom_id": f"{start}1+1",
        "status": "failed",
        "error": {"kind": "remote", "msg": f'{start}HYPERLINK("http://x")', "code": -5},
        "attempts": -1,
        "created_at": -1.5,
        "audios": [],
    }
    out = io.StringIO()
    write_csv([record], out)
    row = next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert row["custom_id"] == f"'{start}1+1"
    assert row["error_msg"] == f'\'{start}HYPERLINK("http://x")'
    # real numbers are data, not formulas: written as they are
    assert (row["error_code"], row["attempts"], row["created_at"]) == ("-5", "-1", "-1.5")


def test_csv_cells_that_only_contain_formula_characters_later_are_kept() -> None:
    assert [neutralised(t) for t in ("a=b", "x-1", "", "'=already")] == [
        "a=b",
        "x-1",
        "",
        "'=already",
    ]
    assert neutralised("-5") == "'-5"  # text, not a number: a custom_id of "-5"


def test_what_nothing_submitted_says_in_a_dry_run_reads_right() -> None:
    from collections import Counter

    from clonequeue.cli.submit_cmd import _where_they_are
    from clonequeue.producers.submission import nothing_submitted

    empty = Submission(IterableSource([]), services=None, batch="e1").run()
    assert "nothing would be submitted and batch e1 would not be created" in str(
        nothing_submitted(empty)
    )
    again = SubmitReport("b2", rows=3, rejected=1, already_submitted=2, already_in=Counter(b1=2))
    assert _where_they_are(again).startswith("every row accepted was submitted before, in batch b1")


def test_a_long_custom_id_is_cut_in_the_message_and_kept_whole_in_the_record() -> None:
    """A 5,002-character custom_id was echoed whole by estimate and submit (QA pass)."""
    error = RowError(3, "p" * 5002, ["custom_id: is 5002 characters long; at most 256"])
    assert str(error) == f"line 3 ({'p' * 139}…): custom_id: is 5002 characters long; at most 256"
    assert error.to_record()["custom_id"] == "p" * 5002
