"""CSV (and JSONL) reading at the edges: over-long cells, UTF-16 files, numbers that only
Python's float()/int() would take. Real files in tmp_path, read as ``submit`` reads them."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from clonequeue.jobspec import JobSpec
from clonequeue.producers.csv_reading import MAX_LINE_CHARS, read_csv
from clonequeue.producers.rows import RowError, validate_row
from clonequeue.producers.sources import InputFile

HEADER = "custom_id,fileUrl,audio_contentText,audio_speed,audio_vol,audio_pitch\n"
TOO_LONG = (
    "is {length:,} characters long; a CSV line may be at most 131,072 characters (the "
    "longest valid row, with a 10,000-character audio_contentText, is far shorter): check "
    "for a cell pasted in by mistake or rows with no line break between them"
)


def row(custom_id: str, text: str = "Hi", speed: str = "", vol: str = "", pitch: str = "") -> str:
    return f"{custom_id},https://v.example.com/{custom_id}.mp3,{text},{speed},{vol},{pitch}\n"


def results_of(path: Path) -> list[JobSpec | RowError]:
    with InputFile.from_arg(str(path)).open() as stream:
        return [validate_row(r) for r in stream.rows]


def accepted(results: list[JobSpec | RowError]) -> list[str]:
    return [r.custom_id for r in results if isinstance(r, JobSpec)]


def errors(results: list[JobSpec | RowError]) -> list[str]:
    return [str(r) for r in results if isinstance(r, RowError)]


# --- 1. an over-long cell is a row error, and the rows after it are read ----------------


def test_a_17_mb_cell_is_a_row_error_and_the_row_after_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    huge = row("c-2", "x" * (17 << 20))
    path.write_text(HEADER + row("c-1") + huge + row("c-3"), encoding="utf-8")
    tracemalloc.start()
    try:
        results = results_of(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert accepted(results) == ["c-1", "c-3"]
    assert errors(results) == ["line 3 (c-2): " + TOO_LONG.format(length=len(huge) - 1)]
    # the line is read past in chunks, never held whole (17 MB)
    assert peak < 8 << 20, peak


def test_an_over_long_line_is_read_past_whatever_its_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    long_cell = "y" * (MAX_LINE_CHARS + 10)
    text = HEADER + row("c-1") + row("c-2", long_cell).replace("\n", "\r\n") + row("c-3")
    path.write_bytes(text.encode())
    results = results_of(path)
    assert accepted(results) == ["c-1", "c-3"]
    length = len(row("c-2", long_cell)) - 1
    assert errors(results) == ["line 3 (c-2): " + TOO_LONG.format(length=length)]


def test_a_line_just_within_the_limit_is_read_as_a_row(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    filler = "z" * (MAX_LINE_CHARS - len(row("c-2", "")) + 1)
    assert len(row("c-2", filler)) - 1 == MAX_LINE_CHARS
    path.write_text(HEADER + row("c-2", filler) + row("c-3"), encoding="utf-8")
    results = results_of(path)
    assert accepted(results) == ["c-3"]  # c-2 is read, and its text is over the API's limit
    assert errors(results) == [
        f"line 2 (c-2): audio_contentText: is {len(filler)} characters long; at most 10000 allowed"
    ]


@pytest.mark.parametrize("line_break", ["\r\n", "\r", "\n"])
def test_line_numbers_stay_the_files_after_a_line_cut_at_the_limit(line_break: str) -> None:
    """A line one character past the limit: the chunk ends between its CR and LF."""
    long_row = row("c-2", "u" * MAX_LINE_CHARS)[: MAX_LINE_CHARS + 1].rstrip("\n")
    rows = [HEADER, row("c-1"), long_row + "\n", row("c-3"), "\n", row("c-4", speed="fast")]
    data = "".join(rows).replace("\n", line_break).encode()
    stream = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)), newline="")
    results = list(read_csv(stream))
    assert [(r.line, r.error is None) for r in results] == [
        (2, True),
        (3, False),
        (4, True),
        (6, True),
    ]
    assert results[1].error == TOO_LONG.format(length=MAX_LINE_CHARS + 1)


def test_an_over_long_line_inside_a_quoted_cell_names_the_row_lines_and_reads_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.csv"
    text = (
        HEADER
        + row("c-1")
        + 'c-2,https://v.example.com/c-2.mp3,"first line\n'
        + "w" * (MAX_LINE_CHARS + 1)
        + '\nlast line",,,\n'
        + row("c-3")
    )
    path.write_text(text, encoding="utf-8")
    results = results_of(path)
    assert accepted(results) == ["c-1", "c-3"]
    assert errors(results) == [
        "lines 3-5 (c-2): line 4 " + TOO_LONG.format(length=MAX_LINE_CHARS + 1)
    ]


def test_an_over_long_line_from_a_plain_list_of_lines_is_a_row_error_too() -> None:
    lines = [HEADER, row("c-1"), row("c-2", "v" * (MAX_LINE_CHARS + 1)), row("c-3")]
    results = [validate_row(r) for r in read_csv(lines)]
    assert accepted(results) == ["c-1", "c-3"]
    assert len(errors(results)) == 1
    assert errors(results)[0].startswith("line 3 (c-2): is ")


# --- 2. UTF-16 is "not UTF-8", and no raw NUL is ever printed ---------------------------


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("utf-16", "UTF-16 (it starts with a UTF-16 byte order mark)"),
        ("utf-16-le", "UTF-16 (its header holds NUL bytes, as UTF-16 text does)"),
        ("utf-16-be", "UTF-16 (its header holds NUL bytes, as UTF-16 text does)"),
        ("utf-32", "UTF-32 (it starts with a UTF-32 byte order mark)"),
    ],
)
def test_a_utf16_csv_is_not_utf8_and_says_so(tmp_path: Path, encoding: str, why: str) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes((HEADER + row("c-1") + row("c-2")).encode(encoding))
    results = results_of(path)
    assert errors(results) == [
        f"line 1: not UTF-8: the file looks like {why}; save the file as UTF-8 "
        '(in Excel: Save As, "CSV UTF-8")'
    ]
    assert accepted(results) == []


def test_a_latin1_header_is_not_utf8_naming_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"custom_id,fileUrl,caf\xe9\nc-1,https://v.example.com/a.mp3,x\n")
    assert errors(results_of(path)) == [
        "line 1: not UTF-8: byte 0xe9 at column 22 of the header; save the file as UTF-8 "
        '(in Excel: Save As, "CSV UTF-8")'
    ]


def test_an_unknown_column_with_control_characters_is_shown_escaped() -> None:
    results = [validate_row(r) for r in read_csv(io.StringIO("custom_id,fileUrl,a\x01b\x7f\n"))]
    message = errors(results)[0]
    assert "unknown column 'a\\x01b\\x7f'" in message
    assert all(c.isprintable() for c in message)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_jsonl_without_a_bom_is_not_utf8_on_every_line(
    tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "jobs.jsonl"
    good = {"custom_id": "j-1", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}
    path.write_bytes((json.dumps(good) + "\n" + json.dumps(good) + "\n").encode(encoding))
    found = errors(results_of(path))
    assert len(found) >= 2
    for message in found:
        assert "not UTF-8: byte 0x00 at column " in message
        assert message.endswith("(UTF-16 text has one in every other byte); save the file as UTF-8")
        assert "\x00" not in message


def test_a_utf16_jsonl_with_a_bom_names_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    good = {"custom_id": "j-1", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}
    path.write_bytes((json.dumps(good) + "\n").encode("utf-16"))
    assert errors(results_of(path))[0] == (
        "line 1: not UTF-8: the file starts with a UTF-16 byte order mark (0xff 0xfe); "
        "save the file as UTF-8"
    )


# --- 3. numbers: plain ASCII decimals only ----------------------------------------------


def read_one(tmp_path: Path, **cells: str) -> JobSpec | RowError:
    path = tmp_path / "jobs.csv"
    path.write_text(HEADER + row("n-1", **cells), encoding="utf-8")
    (result,) = results_of(path)
    return result


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"speed": "1.5"}, {"speed": 1.5}),
        ({"speed": "15e-1"}, {"speed": 1.5}),
        ({"speed": "+1.25"}, {"speed": 1.25}),
        ({"speed": " 2 "}, {"speed": 2.0}),
        ({"vol": "10"}, {"vol": 10.0}),
        ({"pitch": "-3"}, {"pitch": -3}),
        ({"pitch": "+12"}, {"pitch": 12}),
    ],
)
def test_plain_ascii_numbers_are_numbers(
    tmp_path: Path, cells: dict[str, str], expected: dict[str, Any]
) -> None:
    spec = read_one(tmp_path, **cells)
    assert isinstance(spec, JobSpec), str(spec)
    audio = spec.audios[0].model_dump(exclude_none=True, exclude={"contentText"})
    assert audio == expected
    assert [type(v) for v in audio.values()] == [type(v) for v in expected.values()]


SPEED_FORM = (
    "write digits 0-9, with an optional sign, decimal point and exponent (e.g. 1.25); "
    "the API accepts 0.5 to 2 (default 1)"
)
PITCH_FORM = (
    "write digits 0-9 with an optional sign (e.g. -3); the API accepts whole numbers "
    "from -12 to 12 (default 0)"
)


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (
            {"speed": "1_0"},
            f"audio_speed: '1_0' is not a plain number ('_' at position 2); {SPEED_FORM}",
        ),
        (
            {"speed": "\u0661"},
            "audio_speed: '\u0661' is not a plain number (U+0661 ARABIC-INDIC DIGIT ONE at "
            f"position 1); {SPEED_FORM}",
        ),
        (
            {"speed": "\uff11.5"},
            "audio_speed: '\uff11.5' is not a plain number (U+FF11 FULLWIDTH DIGIT ONE at "
            f"position 1); {SPEED_FORM}",
        ),
        (
            {"speed": "nan"},
            f"audio_speed: 'nan' is not a plain number ('n' at position 1); {SPEED_FORM}",
        ),
        ({"speed": ".5"}, f"audio_speed: '.5' is not a plain number; {SPEED_FORM}"),
        ({"speed": "1."}, f"audio_speed: '1.' is not a plain number; {SPEED_FORM}"),
        (
            {"vol": "1_0"},
            "audio_vol: '1_0' is not a plain number ('_' at position 2); write digits 0-9, "
            "with an optional sign, decimal point and exponent (e.g. 1.25); the API accepts "
            "more than 0, up to 10 (default 1)",
        ),
        (
            {"pitch": "1_0"},
            f"audio_pitch: '1_0' is not a plain whole number ('_' at position 2); {PITCH_FORM}",
        ),
        (
            {"pitch": "\u0663"},
            "audio_pitch: '\u0663' is not a plain whole number (U+0663 ARABIC-INDIC DIGIT "
            f"THREE at position 1); {PITCH_FORM}",
        ),
        # unchanged: not a number at all, or not whole
        (
            {"speed": "fast"},
            "audio_speed: 'fast' is not a number; the API accepts 0.5 to 2 (default 1)",
        ),
        (
            {"pitch": "1.5"},
            "audio_pitch: '1.5' is not a whole number; the API accepts whole numbers from -12 "
            "to 12 (default 0)",
        ),
    ],
)
def test_numbers_python_alone_would_read_are_row_errors_naming_the_rule(
    tmp_path: Path, cells: dict[str, str], reason: str
) -> None:
    result = read_one(tmp_path, **cells)
    assert isinstance(result, RowError)
    assert str(result) == f"line 2 (n-1): {reason}"


def test_an_over_long_header_is_one_error_and_nothing_else_is_read(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("custom_id," + "q" * MAX_LINE_CHARS + "\n" + row("c-1"), encoding="utf-8")
    assert errors(results_of(path)) == [
        "line 1: CSV header: " + TOO_LONG.format(length=MAX_LINE_CHARS + 10)
    ]
