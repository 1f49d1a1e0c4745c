"""Read job rows from JSONL, streaming: one row in memory at a time."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from clonequeue.producers.rows import Row, json_type

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# The longest line read as a row. The largest valid row (100 audios of 10,000
# characters) is ~4 MB as UTF-8 and ~12 MB with every character \u-escaped; a longer
# line is rows run together or not JSONL at all, and read whole a 60 MB one took
# ~290 MB of memory.
MAX_LINE_BYTES = 16 << 20
_SKIP_CHUNK_BYTES = 1 << 20
_SKIP_CHUNK_CHARS = 1 << 18  # text: up to 4 bytes a character in a str


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | int]:
    """The lines of ``stream``; one longer than ``limit`` bytes is read past in chunks
    and given as its length (without the newline), so memory stays within ``limit``."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        length = len(line)
        while not line.endswith(b"\n") and (line := stream.readline(_SKIP_CHUNK_BYTES)):
            length += len(line)
        yield length - line.endswith(b"\n")


@dataclass(frozen=True, slots=True)
class LongLine:
    """A text line longer than the limit, read past: its length without the line break,
    and its first ``limit`` characters (enough to name the row's first cells)."""

    length: int
    head: str


def bounded_text_lines(lines: Iterable[str], limit: int) -> Iterator[str | LongLine]:
    """The lines of ``lines`` (text read with ``newline=""``); one longer than ``limit``
    characters is a :class:`LongLine`. From a text stream such a line is read past in
    chunks, so memory stays within ``limit``; a plain iterable hands over whole lines."""
    readline = getattr(lines, "readline", None)
    if readline is None:
        for line in lines:
            length = len(line) - _break_length(line)
            yield line if length <= limit else LongLine(length, line[:limit])
        return
    after_cr = False  # a CRLF cut after its CR by a chunk's size: its LF is not a line
    while line := readline(limit + 2):  # room for the content and a CRLF
        if after_cr and line == "\n":
            after_cr = False
            continue
        after_cr = False
        length = len(line) - _break_length(line)
        if length <= limit:
            yield line
            continue
        head, last = line[:limit], line
        while not last.endswith(("\n", "\r")) and (last := readline(_SKIP_CHUNK_CHARS)):
            length += len(last) - _break_length(last)
        after_cr = last.endswith("\r")
        yield LongLine(length, head)


def _break_length(line: str) -> int:
    if line.endswith("\r\n"):
        return 2
    return 1 if line.endswith(("\n", "\r")) else 0


class _RepeatedKeyError(ValueError):
    """Raised from inside the decoder: the row stops there, as for malformed JSON."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a repeated key: ``json`` would keep only its last value."""
    value = dict(pairs)
    if len(value) != len(pairs):  # one length check per object: cheap on the hot path
        keys = [key for key, _ in pairs]
        raise _RepeatedKeyError(next(key for key in keys if keys.count(key) > 1))
    return value


# One decoder for every row: json.loads(..., object_pairs_hook=…) would build one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def _parse(text: str) -> Any:
    """``json.loads`` refusing repeated keys; a BOM keeps json's own "Unexpected UTF-8 BOM"."""
    if text.startswith("\ufeff"):
        return json.loads(text)  # raises; the decoder would only say "Expecting value"
    return _DECODER.decode(text)


def read_jsonl(lines: Iterable[bytes | int]) -> Iterator[Row]:
    """One :class:`Row` per line; bad bytes, bad JSON and over-long lines (given as
    their length by :func:`bounded_lines`) become row errors.

    Blank (whitespace-only) lines are skipped, as ``jq`` and
    ``pandas.read_json(lines=True)`` skip them: an editor's trailing newline or a
    spacer line is not a job. Line numbers stay those of the file.
    """
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, int):
            yield Row(
                number,
                error=f"is {raw:,} bytes long; a row may be at most {MAX_LINE_BYTES >> 20} MiB "
                "(100 audios of 10,000 characters fit); check that each row ends with a newline",
            )
            continue
        stripped = raw.strip()
        if number == 1 and stripped.startswith(UTF8_BOM):
            stripped = stripped[len(UTF8_BOM) :]  # editors on Windows write one
        if not stripped:
            continue
        if number == 1 and stripped.startswith(UTF16_BOMS):
            yield Row(
                number,
                error=f"not UTF-8: the file starts with a UTF-16 byte order mark "
                f"(0x{stripped[0]:02x} 0x{stripped[1]:02x}); save the file as UTF-8",
                original=stripped.decode("utf-8", "replace"),
            )
            continue
        if b"\x00" in stripped:  # valid UTF-8, but never in JSON text: UTF-16 (or binary)
            yield Row(
                number,
                error=f"not UTF-8: byte 0x00 at column {stripped.index(0) + 1} (UTF-16 text "
                "has one in every other byte); save the file as UTF-8",
                original=stripped.decode("utf-8", "replace"),
            )
            continue
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            readable = stripped.decode("utf-8", "replace")
            yield Row(
                number,
                error=f"not UTF-8: byte 0x{stripped[exc.start]:02x} at column "
                f"{exc.start + 1}; save the file as UTF-8",
                original=readable,
                custom_id=_custom_id_of(readable),
            )
            continue
        try:
            value = _parse(text)
        except json.JSONDecodeError as exc:
            yield Row(
                number, error=f"not valid JSON: {exc.msg} at column {exc.colno}", original=text
            )
            continue
        except _RepeatedKeyError as exc:
            yield Row(
                number,
                error=f"key {exc.key!r} appears twice in one object; write each key once "
                "(JSON readers would keep only the last)",
                original=text,
                custom_id=_custom_id_of(text),
            )
            continue
        if not isinstance(value, dict):
            yield Row(
                number,
                error=f"a row must be a JSON object, not {json_type(value)}",
                original=value,
            )
            continue
        yield Row(number, data=value, original=value)


def _custom_id_of(text: str) -> str | None:
    """The custom_id of a row that is rejected anyway, to help find it (None if unreadable)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    custom_id = value.get("custom_id") if isinstance(value, dict) else None
    return custom_id if isinstance(custom_id, str) and custom_id else None
