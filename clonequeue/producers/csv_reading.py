"""Read job rows from CSV, streaming: one production audio per row, a job's rows grouped.

Columns are the API's field names: ``custom_id,fileUrl,contentText,soundVersion,language``
for the clone, ``audio_<field>`` for the row's production audio (``audio_contentText``,
``audio_emotion``, ``audio_speed`` …). Adjacent rows with the same custom_id and the
same clone fields are one job with one audio per row, so only the current job is
held in memory. An empty cell is an absent field. Errors name CSV columns and lines.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from clonequeue.constants import AUDIO_TEXT_MAX_CHARS, MAX_AUDIOS_PER_JOB
from clonequeue.producers.csv_cells import convert_cell, explain_by_line
from clonequeue.producers.reading import LongLine, bounded_text_lines
from clonequeue.producers.rows import Row
from clonequeue.wording import plural

CLONE_COLUMNS = ("fileUrl", "contentText", "soundVersion", "language")
AUDIO_FIELDS = (
    "custom_id",
    "contentText",
    "soundVersion",
    "language",
    "emotion",
    "speed",
    "vol",
    "pitch",
    "subtitleEnable",
    "subtitleType",
)
AUDIO_COLUMNS = {f"audio_{name}": name for name in AUDIO_FIELDS}
REQUIRED_COLUMNS = ("custom_id", "fileUrl")
KNOWN_COLUMNS = ("custom_id", *CLONE_COLUMNS, *AUDIO_COLUMNS)
# The longest line read as (part of) a row: the csv module's own default field limit.
# A valid row (a 10,000-character audio_contentText and short ids, URL and preview
# text) is far shorter; a longer line is a pasted blob or rows run together, read past
# in chunks rather than held whole.
MAX_LINE_CHARS = 128 << 10

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # undecodable bytes under errors="surrogateescape"
_SAVE_AS_UTF8 = 'save the file as UTF-8 (in Excel: Save As, "CSV UTF-8")'
# What an undecodable start of the file is, as decoded with errors="surrogateescape"
_BYTE_ORDER_MARKS = (
    ("\udcff\udcfe\x00\x00", "UTF-32"),
    ("\x00\x00\udcfe\udcff", "UTF-32"),
    ("\udcff\udcfe", "UTF-16"),
    ("\udcfe\udcff", "UTF-16"),
)


def check_header(cells: list[str]) -> list[str]:
    """The column names; raises ValueError naming every problem and the known columns."""
    names = [c.strip() for c in cells]
    problems: list[str] = []
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"column '{_shown(name)}' appears twice")
    for name in names:
        if name not in KNOWN_COLUMNS:
            guess = _guess(name)
            hint = f" (did you mean '{guess}'?)" if guess else ""
            problems.append(f"unknown column '{_shown(name[:80])}'{hint}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        problems.append("missing column " + ", ".join(f"'{c}'" for c in missing))
    separator = _other_separator(names)
    if separator:  # an export in a locale that separates with ';' (QA pass)
        problems.insert(
            0,
            f"the header seems separated by {separator!r}, not commas: save the file "
            'with commas (in Excel: Save As, "CSV UTF-8 (Comma delimited)")',
        )
    if problems:
        raise ValueError(
            "CSV header: " + "; ".join(problems) + "; the columns are " + ",".join(KNOWN_COLUMNS)
        )
    return names


def _other_separator(names: list[str]) -> str | None:
    """``;``, tab or ``|`` when a one-column header holds known column names split by it."""
    if len(names) != 1:
        return None
    for separator in (";", "\t", "|"):
        parts = [p.strip() for p in names[0].split(separator)]
        if len(parts) > 1 and sum(p in KNOWN_COLUMNS for p in parts) >= 2:
            return separator
    return None


def _looks_like_json(header: str) -> str | None:
    """A first line that opens a JSON object is no header: each of its `"key": value`
    fragments would be named an unknown column, when the file is JSONL read as CSV
    (``--format csv`` on a JSONL file, or a JSONL file named ``.csv``)."""
    if not header.lstrip(" \t").startswith("{"):
        return None
    return (
        "line 1 starts with '{', so this looks like JSONL (one JSON object per line), not "
        'CSV: read it as JSONL (--format jsonl, format="jsonl" in Python, or a name '
        "ending in .jsonl)"
    )


def _guess(name: str) -> str | None:
    by_lower = {c.lower(): c for c in KNOWN_COLUMNS}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, KNOWN_COLUMNS, n=1, cutoff=0.75)
    return close[0] if close else None


def read_csv(lines: Iterable[str]) -> Iterator[Row]:
    """One :class:`Row` per job; a wrong header is one error on line 1 and nothing else is read.

    ``lines`` is text decoded with ``errors="surrogateescape"`` (and ``newline=""``),
    so bytes that are not UTF-8 become per-row errors instead of stopping the file (a
    header that is not UTF-8, a UTF-16 file's, stops it). A line longer than
    :data:`MAX_LINE_CHARS` is a row error, read past in chunks (never held whole).
    """
    limit = min(csv.field_size_limit(), MAX_LINE_CHARS)
    taken: list[str] = []  # the physical lines of the record just read
    long_lines: list[tuple[int, LongLine]] = []  # of that record, with their numbers
    reader = csv.reader(_taking(bounded_text_lines(lines, limit), taken, long_lines))
    try:
        header_cells = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield Row(1, error=f"unreadable CSV header: {exc}")
        return
    header_text = long_lines[0][1].head if long_lines else "".join(taken)
    problem = _encoding_problem(header_text)
    if problem is None and long_lines:
        problem = "CSV header: " + _too_long(long_lines[0][1].length, limit)
    if problem is not None:
        yield Row(1, error=problem, original=_readable(header_text[:200]))
        return
    try:
        header = check_header(header_cells)
    except ValueError as exc:
        looks = _looks_like_json(header_text)
        problem = f"CSV header: {looks}" if looks else str(exc)
        yield Row(1, error=problem, original=_readable(",".join(header_cells)))
        return
    group: _Group | None = None
    last_line = reader.line_num
    while True:
        taken.clear()
        long_lines.clear()
        error: csv.Error | None = None
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error, cells = exc, []
        line, last_line = last_line + 1, reader.line_num
        if error is not None or long_lines:
            if group is not None:
                yield group.row()
                group = None
            if long_lines:
                yield _long_line_row(line, last_line, long_lines, taken, header, limit)
            elif error is not None and last_line == line:
                yield Row(
                    line,
                    error=f"unreadable CSV ({error}); check this row's quotes and line breaks",
                    original=_readable(taken[0].rstrip("\r\n")) if taken else "",
                )
            elif error is not None:
                yield _runaway_quote(line, last_line, taken, header, error)
            continue  # and read on after it
        if not cells:
            continue  # a blank line: skipped, as pandas.read_csv does
        record = dict(zip(header, cells, strict=False))
        problem = _quote_problem(cells, line, last_line, taken) or _row_problem(cells, header)
        same_job = (
            problem is None
            and group is not None
            and record["custom_id"] != ""
            and record["custom_id"] == group.custom_id
        )
        if same_job:
            assert group is not None
            group.add(line, record)
            continue
        if group is not None:
            yield group.row()
            group = None
        if problem is None:
            group = _Group(line, record)
        else:
            custom_id = _readable(record.get("custom_id", "")) or None
            yield Row(
                line,
                error=problem,
                original=_readable_record(record, cells),
                custom_id=custom_id,
                last_line=last_line,
            )
    if group is not None:
        yield group.row()


def _encoding_problem(header: str) -> str | None:
    """Why the header is not UTF-8 text: a UTF-16 (or UTF-32) file, or a byte of another
    encoding. Such a file is not read on: every line would be one more such error."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if header.startswith(mark):
            why = f"{encoding} (it starts with a {encoding} byte order mark)"
            return f"not UTF-8: the file looks like {why}; {_SAVE_AS_UTF8}"
    if "\x00" in header:
        why = "UTF-16 (its header holds NUL bytes, as UTF-16 text does)"
        return f"not UTF-8: the file looks like {why}; {_SAVE_AS_UTF8}"
    bad = _NOT_UTF8.search(header)
    if bad:
        byte = ord(bad.group()) - 0xDC00
        return f"not UTF-8: byte 0x{byte:02x} at column {bad.start() + 1} of the header; " + (
            _SAVE_AS_UTF8
        )
    return None


def _too_long(length: int, limit: int) -> str:
    return (
        f"is {length:,} characters long; a CSV line may be at most {limit:,} characters (the "
        f"longest valid row, with a {AUDIO_TEXT_MAX_CHARS:,}-character audio_contentText, is "
        "far shorter): check for a cell pasted in by mistake or rows with no line break "
        "between them"
    )


def _long_line_row(
    line: int,
    last_line: int,
    long_lines: list[tuple[int, LongLine]],
    taken: list[str],
    header: list[str],
    limit: int,
) -> Row:
    """A record with a line past the limit (read past, never parsed): one row error.

    The custom_id comes from the cells before the last one on the record's first line,
    the only ones known to be whole.
    """
    number, long_line = long_lines[0]
    first = long_line.head if number == line else (taken[0] if taken else "")
    where = "" if last_line == line else f"line {number} "
    return Row(
        line,
        error=where + _too_long(long_line.length, limit),
        custom_id=_leading_custom_id(first, header),
        last_line=last_line,
    )


def _leading_custom_id(text: str, header: list[str]) -> str | None:
    try:
        cells = next(csv.reader([text]), [])
    except csv.Error:
        return None
    index = header.index("custom_id")
    if index >= len(cells) - 1:  # the last cell may be cut off
        return None
    return _readable(cells[index]) or None


def _row_problem(cells: list[str], header: list[str]) -> str | None:
    for name, cell in zip(header, cells, strict=False):
        bad = _NOT_UTF8.search(cell)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            return f"not UTF-8: byte 0x{byte:02x} in column {name}; save the file as UTF-8"
    if len(cells) != len(header):
        return f"has {plural(len(cells), 'cell')} but the header has {len(header)} columns"
    return None


def _quote_problem(cells: list[str], line: int, last_line: int, taken: list[str]) -> str | None:
    """A record read across lines because a quote never closed: it took in the next rows.

    The reader is lenient, so such a record is found by reading its lines again
    strictly. The quote is that of the last cell holding a line break: an unclosed
    quote takes in every line up to the next quote (or the end of the file).
    """
    if last_line == line or not _malformed(taken):
        return None
    opened = start = line
    for cell in cells:
        if "\n" in cell:
            opened = start
        start += cell.count("\n")
    return _unclosed(opened, line, last_line)


def _unclosed(opened: int, line: int, last_line: int, why: str = "") -> str:
    return (
        f"a quote opened on line {opened} is not closed, so lines {line}-{last_line} were "
        f'read as one row{why}; close the quote, or double it ("") if it is part of the text'
    )


def _runaway_quote(
    line: int, last_line: int, taken: list[str], header: list[str], exc: csv.Error
) -> Row:
    """A quote that took in lines until the reader gave up (the field limit): its first line."""
    first = next(csv.reader(taken[:1]), [])
    custom_id = dict(zip(header, first, strict=False)).get("custom_id", "")
    return Row(
        line,
        error=_unclosed(line, line, last_line, f" ({exc})"),
        original=_readable(taken[0].rstrip("\r\n")) if taken else "",
        custom_id=_readable(custom_id) or None,
        last_line=last_line,
    )


def _malformed(lines: list[str]) -> bool:
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error:
        return True
    return False


def _taking(
    lines: Iterable[str | LongLine], taken: list[str], long_lines: list[tuple[int, LongLine]]
) -> Iterator[str]:
    """``lines``, each also put in ``taken``: the reader pulls only the lines of one record.

    A line past the limit goes to ``long_lines`` with its number, and the reader gets a
    line break in its place, so that line numbers stay the file's.
    """
    for number, line in enumerate(lines, start=1):
        if isinstance(line, LongLine):
            long_lines.append((number, line))
            line = "\n"
        taken.append(line)
        yield line


def _readable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _shown(text: str) -> str:
    """Text for a message: readable, with control characters (a NUL…) escaped, never raw."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in _readable(text))


def _readable_record(record: dict[str, str], cells: list[str]) -> Any:
    if not cells:
        return ""
    if len(record) != len(cells):
        return [_readable(c) for c in cells]
    return {k: _readable(v) for k, v in record.items()}


class _Group:
    """The adjacent rows of one job."""

    def __init__(self, line: int, record: dict[str, str]) -> None:
        self.custom_id = record["custom_id"]
        self.lines = [line]
        self.records = [record]
        self.extra_rows = 0  # past MAX_AUDIOS_PER_JOB: counted, not kept

    def add(self, line: int, record: dict[str, str]) -> None:
        if len(self.records) > MAX_AUDIOS_PER_JOB:
            self.extra_rows += 1
            return
        self.lines.append(line)
        self.records.append(record)

    def row(self) -> Row:
        first_line, first = self.lines[0], self.records[0]
        original: Any = self.records if len(self.records) > 1 else first
        problems = self._problems()
        if problems:
            return Row(first_line, error="; ".join(problems), original=original,
                       custom_id=self.custom_id or None)  # fmt: skip
        data: dict[str, Any] = {"clone": _present(first, CLONE_COLUMNS)}
        if self.custom_id:
            data["custom_id"] = self.custom_id
        audios = [a for a in (_audio(r) for r in self.records) if a]
        if audios:
            data["audios"] = audios
        lines = list(self.lines)
        return Row(
            first_line,
            data=data,
            original=original,
            explain=lambda exc: explain_by_line(exc, lines),
        )

    def _problems(self) -> list[str]:
        problems = []
        if self.extra_rows:
            count = len(self.records) + self.extra_rows
            problems.append(f"{count} rows for one job; a job has at most {MAX_AUDIOS_PER_JOB}")
        first = self.records[0]
        for line, record in zip(self.lines[1:], self.records[1:], strict=True):
            differing = [c for c in CLONE_COLUMNS if record.get(c, "") != first.get(c, "")]
            if differing:
                problems.append(
                    f"{', '.join(differing)} (line {line}) differs from line {self.lines[0]}; "
                    "rows of one job repeat the same clone fields (else use another custom_id)"
                )
        if len(self.records) > 1:
            for line, record in zip(self.lines, self.records, strict=True):
                if not _audio(record):
                    problems.append(
                        f"line {line} has no audio_* cells; each row of a "
                        "several-row job is one production audio"
                    )
        return problems


def _present(record: dict[str, str], columns: Iterable[str]) -> dict[str, str]:
    return {c: record[c] for c in columns if record.get(c, "") != ""}


def _audio(record: dict[str, str]) -> dict[str, Any]:
    return {
        field: convert_cell(field, record[column])
        for column, field in AUDIO_COLUMNS.items()
        if record.get(column, "") != ""
    }
