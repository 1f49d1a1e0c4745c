"""Reading inputs: format detection, JSONL and CSV details, gzip, stdin, the CSV round trip."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from clonequeue.errors import InputError
from clonequeue.jobspec import JobSpec
from clonequeue.producers.csv_reading import AUDIO_COLUMNS, CLONE_COLUMNS, read_csv
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.producers.reading import read_jsonl
from clonequeue.producers.rows import RowError, validate_row
from clonequeue.producers.sources import InputFile, InputFormat, _sniff, detect_format

SPECS = [
    {
        "custom_id": "spk-1",
        "clone": {
            "fileUrl": "https://v.example.com/one.wav",
            "contentText": "Preview, with a comma",
            "soundVersion": "v2",
            "language": "English",
        },
        "audios": [
            {
                "contentText": 'Say "hello"\nthen <#0.5#> go',
                "emotion": "happy",
                "speed": 1.25,
                "vol": 2.0,
                "pitch": -3,
                "subtitleEnable": True,
                "subtitleType": "word",
            },
            {"custom_id": "spk-1-outro", "contentText": "Bye", "subtitleEnable": False},
        ],
    },
    {"custom_id": "spk-2", "clone": {"fileUrl": "https://v.example.com/two.mp4"}},
    {
        "custom_id": "spk-3",
        "clone": {"fileUrl": "https://v.example.com/three.mp3"},
        "audios": [{"contentText": "Only one", "language": "French", "soundVersion": "v1"}],
    },
]


def to_csv(specs: list[dict[str, Any]]) -> str:
    """The CSV form of job rows: one row per production audio, clone fields repeated."""
    out = io.StringIO()
    columns = ["custom_id", *CLONE_COLUMNS, *AUDIO_COLUMNS]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for spec in specs:
        base = {"custom_id": spec["custom_id"], **spec["clone"]}
        for audio in spec.get("audios") or [{}]:
            cells = {f"audio_{k}": v for k, v in audio.items()}
            writer.writerow({k: _text(v) for k, v in {**base, **cells}.items()})
    return out.getvalue()


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def specs_of(rows: Any) -> list[JobSpec | RowError]:
    return [validate_row(row) for row in rows]


def test_csv_round_trip_gives_the_same_jobs_as_jsonl() -> None:
    from_csv = specs_of(read_csv(io.StringIO(to_csv(SPECS), newline="")))
    from_jsonl = specs_of(read_jsonl(json.dumps(s).encode() + b"\n" for s in SPECS))
    assert all(isinstance(s, JobSpec) for s in from_csv), from_csv
    assert from_csv == from_jsonl
    dumped = [s.model_dump(exclude_none=True) for s in from_csv]  # type: ignore[union-attr]
    assert dumped == [{"audios": [], **spec} for spec in SPECS]


def test_csv_rows_of_one_job_must_be_adjacent_else_the_id_repeats() -> None:
    text = (
        "custom_id,fileUrl,audio_contentText\n"
        "a,https://v.example.com/a.mp3,One\n"
        "b,https://v.example.com/b.mp3,Two\n"
        "a,https://v.example.com/a.mp3,Three\n"
    )
    rows = list(read_csv(io.StringIO(text, newline="")))
    assert [(r.line, r.data["custom_id"]) for r in rows if r.data] == [(2, "a"), (3, "b"), (4, "a")]


def test_csv_header_may_hold_only_the_documented_columns() -> None:
    rows = list(read_csv(io.StringIO("custom_id,fileUrl,fileUrl,Emotion\nx,y,z,w\n")))
    assert len(rows) == 1
    assert rows[0].line == 1
    assert rows[0].error is not None
    assert rows[0].error.startswith(
        "CSV header: column 'fileUrl' appears twice; unknown column 'Emotion'"
    )


def test_csv_with_a_byte_order_mark_and_crlf_reads_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b"\xef\xbb\xbfcustom_id,fileUrl\r\nx1,https://v.example.com/x.mp3\r\n"
        b"x2,https://v.example.com/y.mp3\r\n"
    )
    with InputFile.from_arg(str(path)).open() as stream:
        specs = specs_of(stream.rows)
    assert [s.custom_id for s in specs if isinstance(s, JobSpec)] == ["x1", "x2"]


def test_jsonl_with_a_byte_order_mark_reads_its_first_row() -> None:
    line = b'\xef\xbb\xbf{"custom_id": "a", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}\n'
    assert isinstance(validate_row(next(read_jsonl([line]))), JobSpec)


def test_gzipped_input_is_read_through(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as out:
        for spec in SPECS:
            out.write(json.dumps(spec) + "\n")
    with InputFile.from_arg(str(path)).open() as stream:
        assert len([s for s in specs_of(stream.rows) if isinstance(s, JobSpec)]) == 3


def test_a_truncated_gzip_is_one_clear_fatal_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps(s).encode() + b"\n" for s in SPECS * 50))
    path.write_bytes(data[: len(data) // 2])
    with (
        pytest.raises(UnreadableInputError, match=r"reading .*rows.jsonl.gz failed after line"),
        InputFile.from_arg(str(path)).open() as stream,
    ):
        list(stream.rows)


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("jobs.jsonl", None, InputFormat.JSONL),
        ("jobs.NDJSON", None, InputFormat.JSONL),
        ("jobs.csv", None, InputFormat.CSV),
        ("jobs.csv.gz", None, InputFormat.CSV),
        ("jobs.txt", "csv", InputFormat.CSV),
        ("-", "JSONL", InputFormat.JSONL),
        ("jobs.parquet", None, InputFormat.PARQUET),
        ("jobs.pq", None, InputFormat.PARQUET),
        ("jobs.bin", "parquet", InputFormat.PARQUET),
    ],
)
def test_format_from_option_or_extension(
    name: str, explicit: str | None, expected: InputFormat
) -> None:
    assert detect_format(name, explicit) is expected


def test_unknown_extension_or_format_is_a_usage_error() -> None:
    with pytest.raises(InputError, match="pass --format jsonl, --format csv or --format parquet"):
        detect_format("jobs.txt")
    with pytest.raises(InputError, match="--format 'xml': use jsonl, csv or parquet"):
        detect_format("jobs.jsonl", "xml")


def test_missing_file_is_fatal_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInputError, match="no such file; check the path"):
        InputFile.from_arg(str(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'  {"custom_id": 1}\n', InputFormat.JSONL),
        (b"custom_id,fileUrl\n", InputFormat.CSV),
        (b"\xef\xbb\xbfcustom_id,fileUrl\n", InputFormat.CSV),
        (b"", InputFormat.JSONL),
    ],
)
def test_stdin_format_is_sniffed(head: bytes, expected: InputFormat) -> None:
    assert _sniff(io.BufferedReader(io.BytesIO(head))) is expected  # type: ignore[arg-type]


def test_stdin_can_be_spooled_and_read_twice(tmp_path: Path) -> None:
    stdin = io.BufferedReader(io.BytesIO(to_csv(SPECS).encode()))
    source = InputFile(None, InputFormat.CSV, stdin=stdin)  # type: ignore[arg-type]
    spooled = source.spool(tmp_path)
    assert spooled.rereadable
    assert spooled.label == "<stdin>"
    for _ in range(2):
        with spooled.open() as stream:
            assert len([s for s in specs_of(stream.rows) if isinstance(s, JobSpec)]) == 3
