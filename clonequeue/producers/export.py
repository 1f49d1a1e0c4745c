"""Result records out as JSONL or CSV, streaming (one job in memory at a time).

Parquet and DataFrames (parquet_export.py, frames.py) take :func:`job_row`: the CSV's
job columns once per job, its audio columns as an ``audios`` list of structs.

CSV mirrors the CSV input: one row per production audio (a job without audios
is one row), so the results of a CSV submission line up with its rows.

CSV is opened in spreadsheets, which run a cell that starts with ``=``, ``+``,
``-``, ``@``, tab or CR as a formula: a custom_id or an API message could then
run one on the reader's machine. Every such text cell is written with a ``'``
first (OWASP's advice on CSV injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from enum import StrEnum
from typing import IO, Any

from clonequeue.errors import InputError

CSV_COLUMNS = (
    "custom_id",
    "batch",
    "status",
    "modelId",
    "audioUrl",
    "error_kind",
    "error_code",
    "error_msg",
    "audio_custom_id",
    "audio_status",
    "audio_audioUrl",
    "audio_subtitleFile",
    "audio_error_kind",
    "audio_error_code",
    "audio_error_msg",
    "attempts",
    "retries",
    "created_at",
    "finished_at",
    # with an artifact store: where our copy of each file is (stored), or pending/failed
    "artifact_state",
    "artifact_url",
    "audio_artifact_state",
    "audio_artifact_url",
    "audio_subtitleArtifact_url",
)


JOB_COLUMNS = tuple(c for c in CSV_COLUMNS if not c.startswith("audio_"))
# the fields of each entry of a job row's ``audios``: the CSV's audio_* columns
AUDIO_COLUMNS = tuple(c.removeprefix("audio_") for c in CSV_COLUMNS if c.startswith("audio_"))


class OutputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


def output_format(value: str) -> OutputFormat:
    try:
        return OutputFormat(value.lower())
    except ValueError:
        raise InputError(f"--format {value!r}: use jsonl, csv or parquet") from None


def write_records(records: Iterable[dict[str, Any]], out: IO[str], fmt: OutputFormat) -> int:
    """Write every record; returns how many jobs were written."""
    if fmt is OutputFormat.JSONL:
        count = 0
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count
    return write_csv(records, out)


def write_csv(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    # csv quotes a cell holding "\n" but not one holding a lone "\r" (with "\n" line
    # ends), which readers take as a line break: such rows are written fully quoted.
    quoting_all = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        count += 1
        for row in csv_rows(record):
            cells = [_cell(row.get(c)) for c in CSV_COLUMNS]
            (quoting_all if any("\r" in c for c in cells) else writer).writerow(cells)
    return count


def job_row(record: dict[str, Any]) -> dict[str, Any]:
    """One job's row for Parquet and DataFrames: :data:`JOB_COLUMNS` and ``audios``."""
    job = _job_columns(record)
    audios = record.get("audios") or []
    job["audios"] = [
        {k.removeprefix("audio_"): v for k, v in _audio_columns(a).items()} for a in audios
    ]
    return job


def csv_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The CSV rows of one result record: the job's columns repeated on each audio's row."""
    job = _job_columns(record)
    audios = record.get("audios") or []
    if not audios:
        return [job]
    return [{**job, **_audio_columns(audio)} for audio in audios]


def _job_columns(record: dict[str, Any]) -> dict[str, Any]:
    error = record.get("error") or {}
    return {
        "custom_id": record["custom_id"],
        "batch": record.get("batch"),
        "status": record["status"],
        "modelId": record.get("modelId"),
        "audioUrl": record.get("audioUrl"),
        "error_kind": error.get("kind"),
        "error_code": error.get("code"),
        "error_msg": error.get("msg"),
        "attempts": record.get("attempts"),
        "retries": record.get("retries"),
        "created_at": record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "artifact_state": _artifact(record, "artifact", "state"),
        "artifact_url": _artifact(record, "artifact", "url"),
    }


def _audio_columns(audio: dict[str, Any]) -> dict[str, Any]:
    audio_error = audio.get("error") or {}
    return {
        "audio_custom_id": audio.get("custom_id"),
        "audio_status": audio.get("status"),
        "audio_audioUrl": audio.get("audioUrl"),
        "audio_subtitleFile": audio.get("subtitleFile"),
        "audio_error_kind": audio_error.get("kind"),
        "audio_error_code": audio_error.get("code"),
        "audio_error_msg": audio_error.get("msg"),
        "audio_artifact_state": _artifact(audio, "artifact", "state"),
        "audio_artifact_url": _artifact(audio, "artifact", "url"),
        "audio_subtitleArtifact_url": _artifact(audio, "subtitleArtifact", "url"),
    }


def _artifact(record: dict[str, Any], which: str, field: str) -> Any:
    """A field of the record's ``artifact`` or ``subtitleArtifact`` (None without a store)."""
    view = record.get(which) or {}
    return view.get(field)


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # a real number (-5, -1.5e3) is data, never a formula: kept as is
    return neutralised(str(value))


def neutralised(text: str) -> str:
    """``text``, with a ``'`` before it when a spreadsheet would run it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
