"""The corpus of bad inputs: every bad row is rejected with its exact message, good rows pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clonequeue.producers.api import estimate
from clonequeue.producers.errors_file import ErrorsFile
from clonequeue.producers.rows import RowError
from clonequeue.producers.sources import InputFile
from clonequeue.producers.submission import Submission

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "bad_inputs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_covers_every_kind_of_bad_input() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".jsonl", ".csv")}
    assert files == set(EXPECTED)
    kinds = " ".join(e for case in EXPECTED.values() for e in case["errors"])
    for kind in (
        "not valid JSON",
        "not UTF-8",
        "custom_id: is required",
        "custom_id: already used by line",
        "CSV header",
        "extension .txt is not an audio or video type",
        "pause marker",
        "is not a field of this request",
    ):
        assert kind in kinds, kind


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_row_gets_its_exact_error(name: str) -> None:
    errors: list[str] = []
    report = estimate(CORPUS / name, on_error=lambda e: errors.append(str(e)))
    expected = EXPECTED[name]
    assert errors == expected["errors"]
    assert (report.rows, report.new, report.repeats) == (
        expected["rows"],
        expected["new"],
        expected["repeats"],
    )
    assert report.rejected == len(expected["errors"])


def test_errors_file_keeps_the_original_row_and_the_reasons(tmp_path: Path) -> None:
    errors_path = tmp_path / "out.errors.jsonl"
    source = InputFile.from_arg(str(CORPUS / "clone_rules.jsonl"))
    report = Submission(source, services=None, errors_path=errors_path).run()
    records = [json.loads(line) for line in errors_path.read_text(encoding="utf-8").splitlines()]
    assert report.errors_path == errors_path
    assert len(records) == report.rejected == 12
    first = records[0]
    assert first["line"] == 2
    assert first["custom_id"] == "cr-txt"
    assert first["row"] == {
        "custom_id": "cr-txt",
        "clone": {"fileUrl": "https://voices.example.com/a.txt"},
    }
    assert first["errors"][0].startswith("clone.fileUrl: extension .txt is not an audio")


def test_errors_file_from_an_earlier_run_is_removed_when_nothing_is_rejected(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"custom_id": "g", "clone": {"fileUrl": "https://v.example.com/g.mp3"}}) + "\n"
    )
    stale = tmp_path / "good.jsonl.errors.jsonl"
    stale.write_text('{"line": 1}\n')
    report = Submission(InputFile.from_arg(str(good)), services=None, errors_path=stale).run()
    assert report.rejected == 0
    assert not stale.exists()


def test_errors_file_is_not_created_for_a_clean_input(tmp_path: Path) -> None:
    target = ErrorsFile(tmp_path / "x.errors.jsonl")
    target.close()
    assert not target.path.exists()
    target.write(RowError(3, "a", ["why"], {"custom_id": "a"}))
    target.close()
    assert json.loads(target.path.read_text()) == {
        "line": 3,
        "custom_id": "a",
        "errors": ["why"],
        "row": {"custom_id": "a"},
    }
