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


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_csv_header_split_by_another_separator_says_so(separator: str) -> None:
    """QA: a ';'-separated export (a European Excel) got only "unknown column
    'custom_id;fileUrl'" and a list of the columns."""
    header = separator.join(["custom_id", "fileUrl", "contentText"])
    (row,) = read_csv(io.StringIO(f"{header}\nx{separator}y{separator}z\n"))
    assert row.error is not None
    assert row.error.startswith(
        f"CSV header: the header seems separated by {separator!r}, not commas: save the file "
        'with commas (in Excel: Save As, "CSV UTF-8 (Comma delimited)")'
    )


def test_a_one_column_header_with_a_semicolon_in_no_known_name_is_no_separator() -> None:
    (row,) = read_csv(io.StringIO("custom;id\nx\n"))
    assert row.error is not None
    assert "seems separated" not in row.error


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


CSV_HEADER = (
    "custom_id,fileUrl,contentText,soundVersion,language,"
    "audio_contentText,audio_emotion,audio_speed,audio_vol,audio_pitch\n"
)
UNCLOSED = 'c-q1,https://x.example.com/q1.mp3,"unterminated,v2,English,,x,,,\n'
UNCLOSED_RULE = (
    "a quote opened on line 4 is not closed, so lines {lines} were read as one row; "
    'close the quote, or double it ("") if it is part of the text'
)


def _csv_row(custom_id: str, text: str = "Hello") -> str:
    return f"{custom_id},https://x.example.com/{custom_id}.mp3,{text},v2,English,Hi,,,,\n"


def test_csv_unclosed_quote_names_the_lines_it_swallowed_and_reads_on() -> None:
    text = (
        CSV_HEADER + _csv_row("c-01") + _csv_row("c-03") + UNCLOSED
        + _csv_row("c-02", '"Hi, there"') + _csv_row("c-04") + _csv_row("c-05")
    )  # fmt: skip
    results = specs_of(read_csv(io.StringIO(text, newline="")))
    errors = [str(r) for r in results if isinstance(r, RowError)]
    assert errors == ["lines 4-5 (c-q1): " + UNCLOSED_RULE.format(lines="4-5")]
    accepted = [r.custom_id for r in results if isinstance(r, JobSpec)]
    assert accepted == ["c-01", "c-03", "c-04", "c-05"]


def test_csv_unclosed_quote_at_the_end_names_the_lines_to_the_end() -> None:
    text = CSV_HEADER + _csv_row("c-01") + _csv_row("c-03") + UNCLOSED + _csv_row("c-04")
    results = specs_of(read_csv(io.StringIO(text + _csv_row("c-05"), newline="")))
    errors = [r for r in results if isinstance(r, RowError)]
    assert [str(e) for e in errors] == ["lines 4-6 (c-q1): " + UNCLOSED_RULE.format(lines="4-6")]
    assert errors[0].line == 4
    assert errors[0].to_record()["line"] == 4


def test_csv_unclosed_quote_in_the_last_column_is_caught_though_the_cells_add_up() -> None:
    text = (
        "custom_id,fileUrl,audio_contentText\n"
        "c-01,https://x.example.com/1.mp3,Hi\n"
        'c-q1,https://x.example.com/q.mp3,"unterminated\n'
        'c-02,https://x.example.com/2.mp3,"Hi"\n'
        "c-03,https://x.example.com/3.mp3,Hi\n"
    )
    results = specs_of(read_csv(io.StringIO(text, newline="")))
    assert [str(r) for r in results if isinstance(r, RowError)] == [
        "lines 3-4 (c-q1): a quote opened on line 3 is not closed, so lines 3-4 were read as "
        'one row; close the quote, or double it ("") if it is part of the text'
    ]
    assert [r.custom_id for r in results if isinstance(r, JobSpec)] == ["c-01", "c-03"]


def test_csv_unclosed_quote_past_the_field_limit_names_its_lines_and_reads_on() -> None:
    rows = "".join(f"r{i},https://x.example.com/{i}.mp3,Hi\n" for i in range(5000))
    text = (
        "custom_id,fileUrl,audio_contentText\n"
        'c-q1,https://x.example.com/q1.mp3,"unterminated\n' + rows
    )  # no quote after it: the cell grows until the csv module's field limit
    results = specs_of(read_csv(io.StringIO(text, newline="")))
    errors = [r for r in results if isinstance(r, RowError)]
    assert len(errors) == 1
    last_line = errors[0].last_line
    assert last_line is not None
    assert str(errors[0]) == (
        f"lines 2-{last_line} (c-q1): a quote opened on line 2 is not closed, so lines "
        f"2-{last_line} were read as one row (field larger than field limit (131072)); "
        'close the quote, or double it ("") if it is part of the text'
    )
    accepted = [r.custom_id for r in results if isinstance(r, JobSpec)]
    assert accepted[0] == f"r{last_line - 2}"  # the row after the swallowed lines
    assert accepted[-1] == "r4999"


def test_jsonl_key_given_twice_is_an_error_naming_the_key() -> None:
    lines = [
        b'{"custom_id": "a", "custom_id": "b", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}',
        b'{"custom_id": "c", "clone": {"fileUrl": "https://v.example.com/a.mp3",'
        b' "fileUrl": "https://v.example.com/b.mp3"}}',
        b'{"custom_id": "d", "clone": {"fileUrl": "https://v.example.com/a.mp3"},'
        b' "audios": [{"contentText": "Hi", "speed": 1, "speed": 2}]}',
        b'{"custom_id": "e", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}',
    ]
    results = specs_of(read_jsonl(lines))
    assert [str(r) for r in results[:3]] == [
        "line 1 (b): key 'custom_id' appears twice in one object; write each key once "
        "(JSON readers would keep only the last)",
        "line 2 (c): key 'fileUrl' appears twice in one object; write each key once "
        "(JSON readers would keep only the last)",
        "line 3 (d): key 'speed' appears twice in one object; write each key once "
        "(JSON readers would keep only the last)",
    ]
    assert isinstance(results[3], JobSpec)


def test_a_jsonl_line_past_the_row_limit_is_a_row_error_read_past_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """A 60 MB line (rows not split by newlines, a binary file) is one row error; the
    reader never holds it whole (it held ~290 MB), and the rows after it go on."""
    import tracemalloc

    from clonequeue.producers.reading import MAX_LINE_BYTES

    good = json.dumps(SPECS[1]).encode()
    path = tmp_path / "rows.jsonl"
    with path.open("wb") as out:
        out.write(good + b"\n")
        huge = b'{"custom_id": "huge", "x": "' + b"a" * (60 << 20) + b'"}'
        out.write(huge + b"\n")
        huge_bytes = len(huge)
        out.write(good.replace(b"spk-2", b"spk-3") + b"\n")
    del huge
    tracemalloc.start()
    try:
        with InputFile.from_arg(str(path)).open() as stream:
            results = specs_of(stream.rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.custom_id for r in results if isinstance(r, JobSpec)] == ["spk-2", "spk-3"]
    assert [str(r) for r in results if not isinstance(r, JobSpec)] == [
        f"line 2: is {huge_bytes:,} bytes long; a row may be at most "
        f"{MAX_LINE_BYTES >> 20} MiB (100 audios of 10,000 characters fit); check that "
        "each row ends with a newline"
    ]
    # readline builds a line and copies it once: twice the limit, not the 60 MB line
    assert peak < 2 * MAX_LINE_BYTES + (4 << 20), peak
