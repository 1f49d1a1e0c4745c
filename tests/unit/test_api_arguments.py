"""The Python API's arguments are checked where a call comes in, and the error says which.

A wrong type found deep inside reads ``'int' object has no attribute 'decode'``; these
name the argument, what it got and what it takes. No Redis is needed: nothing is
sent before the arguments pass (the settings point at a port where nothing listens).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue import Batch, InputError
from clonequeue.config import load_settings
from clonequeue.producers.enqueue import check_batch_id
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.services import Services

NOWHERE = "redis://127.0.0.1:1/0"
ROWS = [{"custom_id": "a", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}]


@pytest.fixture
def services() -> Services:
    return Services(load_settings(env_file=None, redis_url=NOWHERE))


def message(call: Any) -> str:
    with pytest.raises(TypeError) as info:
        call()
    return str(info.value)


def test_submit_names_the_argument_what_it_got_and_what_it_takes(services: Services) -> None:
    assert message(lambda: clonequeue.submit(5, services=services)) == (
        "submit(rows=...): expected an iterable of dicts (or JobSpecs), a DataFrame or a "
        "file path; got int 5"
    )
    assert message(lambda: clonequeue.submit(ROWS, batch=5, services=services)) == (  # type: ignore[arg-type]
        "submit(batch=...): expected a batch name (str) or None; got int 5"
    )
    assert message(lambda: clonequeue.submit(ROWS, webhook=5, services=services)) == (  # type: ignore[arg-type]
        "submit(webhook=...): expected a URL (str) or None; got int 5"
    )
    assert message(lambda: clonequeue.submit(ROWS, errors=5, services=services)) == (  # type: ignore[arg-type]
        "submit(errors=...): expected a file path (str or pathlib.Path) or None; got int 5"
    )
    assert message(lambda: clonequeue.submit(ROWS, max_chars="10", services=services)) == (  # type: ignore[arg-type]
        "submit(max_chars=...): expected a number of characters (int) or None; got str '10'"
    )
    assert message(lambda: clonequeue.submit(ROWS, on_error=5, services=services)) == (  # type: ignore[arg-type]
        "submit(on_error=...): expected a function or None; got int 5"
    )
    assert message(lambda: clonequeue.submit(ROWS, strict="yes", services=services)) == (  # type: ignore[arg-type]
        "submit(strict=...): expected True or False; got str 'yes'"
    )
    assert message(lambda: clonequeue.submit(ROWS, settings=5)) == (  # type: ignore[arg-type]
        "submit(settings=...): expected a clonequeue.Settings or None; got int 5"
    )


def test_a_bool_is_not_a_number_and_long_values_are_cut(services: Services) -> None:
    assert message(lambda: clonequeue.submit(ROWS, max_chars=True, services=services)) == (
        "submit(max_chars=...): expected a number of characters (int) or None; got bool True"
    )
    got = message(lambda: clonequeue.submit(ROWS, batch=["x"] * 100, services=services))  # type: ignore[arg-type]
    assert re.fullmatch(r".*; got list \[.{40,80}\.\.\.", got), got


def test_estimate_results_and_batch_check_theirs_too(services: Services) -> None:
    assert message(lambda: clonequeue.estimate(None)).startswith(
        "estimate(rows=...): expected an iterable of dicts (or JobSpecs), a DataFrame or a "
        "file path; got None"
    )
    assert message(lambda: clonequeue.results(5)) == (  # type: ignore[arg-type]
        "results(batch=...): expected a batch id (str or Batch); got int 5"
    )
    assert message(lambda: Batch(5, services=services)) == (  # type: ignore[arg-type]
        "Batch(batch_id=...): expected a batch id (str); got int 5"
    )
    with pytest.raises(ValueError, match=r"expected a batch id \(not empty\); got str '  '"):
        Batch("  ", services=services)  # it read as a batch not found (QA pass)
    batch = Batch("b", services=services)
    assert message(lambda: batch.wait(timeout="10")) == (  # type: ignore[arg-type]
        "Batch.wait(timeout=...): expected a number of seconds or None; got str '10'"
    )
    assert message(lambda: batch.wait(poll_interval=None)) == (  # type: ignore[arg-type]
        "Batch.wait(poll_interval=...): expected a number of seconds; got None"
    )
    assert message(lambda: batch.wait(on_progress="print")) == (  # type: ignore[arg-type]
        "Batch.wait(on_progress=...): expected a function or None; got str 'print'"
    )
    assert message(lambda: batch.cancel(by=5)) == (  # type: ignore[arg-type]
        "Batch.cancel(by=...): expected who asked (str) or None; got int 5"
    )


def test_a_mapping_says_to_put_it_in_a_list(services: Services) -> None:
    got = message(lambda: clonequeue.submit(ROWS[0], services=services))  # type: ignore[arg-type]
    assert got.startswith(
        "submit(rows=...): expected an iterable of dicts (or JobSpecs), a DataFrame or a "
        "file path; got dict {'custom_id': 'a'"
    )
    assert got.endswith("; put one row in a list: [row]")


# --- batch names: one rule for the CLI and the Python API --------------------------------


def test_a_batch_name_may_not_start_with_a_dash() -> None:
    assert check_batch_id("march-2.b_1") == "march-2.b_1"
    with pytest.raises(ValueError, match="does not start with '-'"):
        check_batch_id("-x")


def test_the_python_api_refuses_a_dash_first_batch_name(services: Services) -> None:
    with pytest.raises(InputError) as info:
        clonequeue.submit(ROWS, batch="-x", services=services)
    assert str(info.value) == (
        "submit(batch='-x'): a batch name is 1-64 letters, digits, '.', '_' or '-', and does not "
        "start with '-' (it would read as an option: `clonequeue status -x`)"
    )


# --- values, not only types: a number that would harm the caller is refused too ------------


def value_message(call: Any) -> str:
    with pytest.raises(ValueError, match=r"=\.\.\.\): expected ") as info:
        call()
    return str(info.value)


POLL = "a finite number of seconds from 0.05 (a shorter pause only loads Redis) to 86,400"


@pytest.mark.parametrize(
    ("poll_interval", "got"),
    [
        (0, "int 0"),
        (-1, "int -1"),
        (0.01, "float 0.01"),
        (float("nan"), "float nan"),
        (float("inf"), "float inf"),
        (1e12, "float 1000000000000.0"),
    ],
)
def test_wait_refuses_a_poll_interval_that_busy_loops_or_never_returns(
    services: Services, poll_interval: float, got: str
) -> None:
    batch = Batch("b", services=services)
    assert value_message(lambda: batch.wait(poll_interval=poll_interval)) == (
        f"Batch.wait(poll_interval=...): expected {POLL}; got {got}"
    )


@pytest.mark.parametrize(
    ("timeout", "got"),
    [
        (-1, "int -1"),
        (-0.5, "float -0.5"),
        (float("nan"), "float nan"),
        (float("inf"), "float inf"),
    ],
)
def test_wait_refuses_a_timeout_that_is_negative_or_not_finite(
    services: Services, timeout: float, got: str
) -> None:
    batch = Batch("b", services=services)
    assert value_message(lambda: batch.wait(timeout=timeout)) == (
        "Batch.wait(timeout=...): expected a finite number of seconds, 0 or more, or None "
        f"(None waits without end); got {got}"
    )


def test_every_bool_argument_of_the_batch_is_checked(services: Services) -> None:
    batch = Batch("b", services=services)
    for name in ("failed", "unknown", "cancelled"):
        assert message(lambda name=name: batch.retry(**{name: "yes"})) == (  # type: ignore[misc]
            f"Batch.retry({name}=...): expected True or False; got str 'yes'"
        )
    assert message(lambda: batch.purge(force="yes")) == (  # type: ignore[arg-type]
        "Batch.purge(force=...): expected True or False; got str 'yes'"
    )
    assert message(lambda: batch.retry(failed=1)) == (  # type: ignore[arg-type]
        "Batch.retry(failed=...): expected True or False; got int 1"
    )
    assert message(lambda: clonequeue.submit(ROWS, dry_run="no", services=services)) == (  # type: ignore[arg-type]
        "submit(dry_run=...): expected True or False; got str 'no'"
    )


def test_results_frame_checks_its_kind(services: Services) -> None:
    batch = Batch("b", services=services)
    assert message(lambda: batch.results_frame(kind=5)) == (  # type: ignore[arg-type]
        "Batch.results_frame(kind=...): expected 'pandas' or 'polars'; got int 5"
    )
    assert value_message(lambda: batch.results_frame(kind="arrow")) == (  # type: ignore[arg-type]
        "Batch.results_frame(kind=...): expected 'pandas' or 'polars'; got str 'arrow'"
    )


@pytest.mark.parametrize(("max_chars", "got"), [(0, "int 0"), (-1, "int -1")])
def test_max_chars_below_one_is_an_argument_error_as_in_the_cli(
    services: Services, max_chars: int, got: str
) -> None:
    assert value_message(
        lambda: clonequeue.submit(ROWS, max_chars=max_chars, services=services)
    ) == (
        "submit(max_chars=...): expected a number of characters (int), 1 or more, or None; "
        f"got {got}"
    )


def test_the_python_api_names_its_batch_argument_not_the_cli_option(services: Services) -> None:
    with pytest.raises(InputError) as info:
        clonequeue.submit(ROWS, batch="", services=services)
    assert str(info.value).startswith("submit(batch=''): a batch name is 1-64 letters")


# --- format=: what the CLI's --format is, for a file with another name -----------------------


def test_format_is_checked_and_only_for_a_file(services: Services, tmp_path: Path) -> None:
    assert message(lambda: clonequeue.submit(ROWS, format=5, services=services)) == (  # type: ignore[arg-type]
        "submit(format=...): expected 'jsonl', 'csv', 'parquet' or None; got int 5"
    )
    assert value_message(lambda: clonequeue.estimate(ROWS, format="tsv")) == (  # type: ignore[arg-type]
        "estimate(format=...): expected 'jsonl', 'csv', 'parquet' or None; got str 'tsv'"
    )
    assert value_message(lambda: clonequeue.submit(ROWS, format="jsonl", services=services)) == (
        "submit(format=...): expected None, as rows is not a file path (format= names a "
        "file's format); got str 'jsonl'"
    )


def test_a_file_of_another_name_is_read_with_format(tmp_path: Path) -> None:
    path = tmp_path / "jobs.txt"
    path.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        clonequeue.estimate(path)
    assert str(info.value).endswith("pass format='jsonl', format='csv' or format='parquet'")
    assert "--format" not in str(info.value)
    report = clonequeue.estimate(path, format="jsonl")
    assert (report.rows, report.rejected) == (1, 0)
    report = clonequeue.estimate(str(path), format="jsonl")
    assert (report.rows, report.rejected) == (1, 0)


# --- a str that is surely a path is a missing file, not a TypeError ---------------------------


@pytest.mark.parametrize(
    "name", ["nope.jsonl", "nope.csv.gz", "nope.parquet", "nope.tsv", "data/jobs", "./jobs"]
)
def test_a_str_that_looks_like_a_path_and_names_no_file_is_unreadable(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnreadableInputError) as info:
        clonequeue.submit(name, services=services)
    assert str(info.value) == f"cannot read {name}: no such file; check the path"
    with pytest.raises(UnreadableInputError):
        clonequeue.estimate(name)


def test_a_str_with_a_format_is_a_path_too(services: Services, tmp_path: Path) -> None:
    with pytest.raises(UnreadableInputError, match="cannot read jobs: no such file"):
        clonequeue.estimate("jobs", format="csv")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("spk-0001", "names no file"),
        ('{"custom_id": "a", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}', "JSON text"),
        ("https://example.com/jobs.jsonl", "a URL"),
    ],
)
def test_a_str_that_is_clearly_not_a_path_stays_a_type_error(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, hint: str
) -> None:
    monkeypatch.chdir(tmp_path)
    got = message(lambda: clonequeue.submit(text, services=services))
    assert got.startswith(f"rows is the str {text!r}"), got
    assert hint in got
