"""The Python API's arguments are checked where a call comes in, and the error says which.

A wrong type found deep inside reads ``'int' object has no attribute 'decode'``; these
name the argument, what it got and what it takes. No Redis is needed: nothing is
sent before the arguments pass (the settings point at a port where nothing listens).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import clonequeue
from clonequeue import Batch, InputError
from clonequeue.config import load_settings
from clonequeue.producers.enqueue import check_batch_id
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
        "--batch '-x': a batch name is 1-64 letters, digits, '.', '_' or '-', and does not "
        "start with '-' (it would read as an option: `clonequeue status -x`)"
    )
