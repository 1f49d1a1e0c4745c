"""Issue 14's input edges, as a new user meets them: gzip anywhere, empty inputs, bad rows.

Through the real CLI (a child process, stdin as bytes) and the Python API, on the
suite's own Redis.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.services import Services
from tests.cli_run import clonequeue_cli


def row(cid: str) -> dict[str, Any]:
    return {"custom_id": cid, "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3"}}


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def cli(
    cwd: Path, redis_url: str, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    settings = {"CLONEQUEUE_REDIS_URL": redis_url, "CLONEQUEUE_NAMESPACE": "p"}
    return clonequeue_cli(*args, cwd=cwd, settings=settings, stdin=stdin)


# --- 1. gzip is recognised by its bytes, on every input -----------------------------------


def test_gzipped_stdin_is_submitted_and_estimated(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    data = gzip.compress(jsonl([row("gz-1"), row("gz-2"), row("gz-3")]))
    submitted = cli(tmp_path, redis_url, "submit", "-", "--batch", "gz1", stdin=data)
    assert submitted.returncode == 0, submitted.stderr
    assert "Traceback" not in submitted.stderr
    assert submitted.stdout.splitlines() == ["gz1"]
    assert "3 rows: accepted 3 (new 3), rejected 0" in submitted.stderr
    assert services.batches.info("gz1") is not None
    assert list(tmp_path.iterdir()) == []  # no stdin.errors.jsonl

    estimated = cli(tmp_path, redis_url, "estimate", "-", stdin=data)
    assert estimated.returncode == 0, estimated.stderr
    assert estimated.stdout.startswith("3 rows: accepted 3 (new 3), rejected 0\n")


def test_gzip_is_read_whatever_the_name_and_a_plain_gz_as_it_is(
    redis_url: str, tmp_path: Path
) -> None:
    gzipped = tmp_path / "named.jsonl"
    gzipped.write_bytes(gzip.compress(jsonl([row("n-1"), row("n-2")])))
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(b"custom_id,fileUrl\np-1,https://v.example.com/p.mp3\n")
    for path, rows in ((gzipped, 2), (plain, 1)):
        out = cli(tmp_path, redis_url, "estimate", str(path), "--json")
        assert out.returncode == 0, out.stderr
        assert (json.loads(out.stdout)["rows"], json.loads(out.stdout)["rejected"]) == (rows, 0)


def test_stdin_that_cannot_be_read_leaves_no_errors_file(redis_url: str, tmp_path: Path) -> None:
    broken = b"\x1f\x8b" + b"\x00" * 40  # gzip's magic bytes, then no valid header
    out = cli(tmp_path, redis_url, "submit", "-", "--batch", "br", stdin=broken)
    assert out.returncode == 1
    assert out.stderr.startswith("error: cannot read <stdin>:")
    assert "Traceback" not in out.stderr
    assert out.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_bytes_that_are_not_utf8_make_a_valid_errors_file(redis_url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, redis_url, "estimate", "-", "--format", "csv", "--errors", "e.jsonl",
              stdin=b"\x8b\xe8custom_id,fileUrl\n")  # fmt: skip
    assert out.returncode == 3, out.stderr
    record = json.loads((tmp_path / "e.jsonl").read_text(encoding="utf-8"))
    assert record["errors"][0].startswith("not UTF-8: byte 0x8b at column 1 of the header")


# --- 3. nothing submitted: exit 1 and no batch id ------------------------------------------


def test_an_empty_input_submits_nothing_and_prints_no_batch_id(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n  \n\r\n")
    for name in ("empty.jsonl", "blank.jsonl"):
        out = cli(tmp_path, redis_url, "submit", name, "--batch", "e1")
        assert out.returncode == 1, out.stderr
        assert out.stdout == ""
        assert "error: the input holds no job (it is empty, or has only blank lines)" in out.stderr
    assert services.batches.info("e1") is None
    as_json = cli(tmp_path, redis_url, "submit", "empty.jsonl", "--batch", "e1", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["batch"] is None


def test_only_bad_rows_submit_nothing_and_print_no_batch_id(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.jsonl").write_bytes(jsonl([{"custom_id": "b1"}, {"custom_id": "b2"}]))
    out = cli(tmp_path, redis_url, "submit", "bad.jsonl", "--batch", "ob1")
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    assert out.stderr.splitlines()[-1] == (
        "error: 2 of 2 rows rejected: line 1 (b1): clone: is required; line 2 (b2): clone: is "
        "required (all in bad.jsonl.errors.jsonl); every row was rejected; nothing was "
        "submitted and batch ob1 was not created"
    )
    assert services.batches.info("ob1") is None
    assert len((tmp_path / "bad.jsonl.errors.jsonl").read_text().splitlines()) == 2


def test_blank_lines_as_editors_write_them_are_no_error(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    text = jsonl([row("t-1")]) + b"\n" + jsonl([row("t-2")]) + b"   \n\r\n"
    (tmp_path / "trail.jsonl").write_bytes(text)
    out = cli(tmp_path, redis_url, "submit", "trail.jsonl", "--batch", "t1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["t1"]
    assert "2 rows: accepted 2 (new 2), rejected 0" in out.stderr
    again = cli(tmp_path, redis_url, "submit", "trail.jsonl")  # a new batch name, nothing new
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["t1"]  # where those jobs are
    assert "every row was submitted before, in batch t1" in again.stderr


def test_dry_run_says_so_once(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(jsonl([row("d-1")]))
    out = cli(tmp_path, redis_url, "submit", "d.jsonl", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "1 row: accepted 1 (new 1), rejected 0; dry run: nothing sent"
    )


def test_json_names_the_batch_text_prints_when_every_row_was_submitted_before(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "r.jsonl").write_bytes(jsonl([row("r-1"), row("r-2")]))
    assert cli(tmp_path, redis_url, "submit", "r.jsonl", "--batch", "re1").returncode == 0
    text = cli(tmp_path, redis_url, "submit", "r.jsonl", "--batch", "re2")
    as_json = cli(tmp_path, redis_url, "submit", "r.jsonl", "--batch", "re2", "--json")
    assert (text.returncode, as_json.returncode) == (0, 0), as_json.stderr
    assert text.stdout.splitlines()[-1] == "re1"
    summary = json.loads(as_json.stdout)
    assert summary["batch"] == "re1"  # what text mode prints: where those jobs are
    assert (summary["new"], summary["already_in"]) == (0, {"re1": 2})


def test_with_json_every_failed_submit_is_one_json_object_with_the_same_exit_code(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "mc.jsonl").write_bytes(jsonl([row("mc-1"), row("mc-2")]))  # 152 characters
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "bad.jsonl").write_bytes(jsonl([{"custom_id": "b1"}]))
    (tmp_path / "rows.txt").write_bytes(jsonl([row("t-1")]))
    cap = ("--max-chars", "100")
    cases: list[tuple[str, tuple[str, ...], int, str]] = [
        (redis_url, ("mc.jsonl", *cap), 1, "the batch would bill 152 characters, more than"),
        (redis_url, ("mc.jsonl", *cap, "--dry-run"), 1, "the batch would bill 152 characters"),
        (redis_url, ("empty.jsonl",), 1, "the input holds no job"),
        (redis_url, ("bad.jsonl",), 1, "1 of 1 row rejected: line 1 (b1): clone: is required"),
        (redis_url, ("missing.jsonl",), 1, "cannot read missing.jsonl: no such file"),
        (redis_url, ("rows.txt",), 2, "cannot tell the format of rows.txt"),
        # a mistyped name is missing, not of an unknown format (QA pass)
        (redis_url, ("rows-typo.txt",), 1, "cannot read rows-typo.txt: no such file"),
        ("redis://127.0.0.1:1/0", ("mc.jsonl",), 1, "cannot reach Redis at redis://127.0.0.1:1/0"),
    ]
    for url, args, code, error in cases:
        out = cli(tmp_path, url, "submit", *args, "--batch", "mc", "--json")
        assert out.returncode == code, (args, out.stdout, out.stderr)
        summary = json.loads(out.stdout)  # one object and nothing else
        assert summary["batch"] is None, args
        assert summary["error"].startswith(error), (args, summary)
        assert out.stderr.splitlines()[-1] == f"error: {summary['error']}"  # the same words
        assert "Traceback" not in out.stderr
        if "--max-chars" in args:
            assert (summary["estimate"]["total_chars"], summary["max_chars"]) == (152, 100)
    assert services.batches.info("mc") is None


# --- 2. the Python API: paths are files, rejected rows are impossible to miss -------------


def test_a_str_path_is_a_file_and_a_str_that_names_none_is_an_error(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs.jsonl").write_bytes(jsonl([row(f"s-{i}") for i in range(8)]))
    monkeypatch.chdir(tmp_path)
    batch = clonequeue.submit("jobs.jsonl", batch="s1", services=services)
    assert batch.submission is not None
    assert (batch.submission.new, batch.submission.rejected) == (8, 0)
    assert batch.status().total == 8
    # a str that looks like a path is a missing file; one that does not is a TypeError
    with pytest.raises(UnreadableInputError, match=r"cannot read nope\.jsonl: no such file"):
        clonequeue.submit("nope.jsonl", batch="s2", services=services)
    with pytest.raises(TypeError, match=r"rows is the str 'nope', which names no file"):
        clonequeue.submit("nope", batch="s2", services=services)
    with pytest.raises(TypeError, match=r"put one row in a list"):
        clonequeue.submit(row("one"), batch="s2", services=services)  # type: ignore[arg-type]
    assert services.batches.info("s2") is None


def test_rejected_rows_are_in_batch_rejected_and_a_warning(services: Services) -> None:
    rows = [row("r-1"), {"custom_id": "r-2", "clone": {"fileUrl": "https://v.example.com/a.txt"}}]
    with pytest.warns(clonequeue.RejectedRowsWarning) as caught:
        batch = clonequeue.submit(rows, batch="r1", services=services)
    assert str(caught[0].message).startswith(
        "1 of 2 rows rejected: line 2 (r-2): clone.fileUrl: extension .txt is not an audio"
    )
    assert [(r.line, r.custom_id, r.field) for r in batch.rejected] == [(2, "r-2", "clone.fileUrl")]
    assert batch.rejected[0].rule.startswith("extension .txt is not an audio or video type")
    assert batch.status().total == 1


def test_strict_raises_with_line_and_field_and_sends_nothing(services: Services) -> None:
    rows = iter(
        [row("x-1"), {"custom_id": "x-2", "clone": {"fileUrl": "ftp://v.example.com/a.mp3"}}]
    )
    with pytest.raises(
        clonequeue.RowsRejectedError, match=r"line 2 \(x-2\): clone\.fileUrl: "
    ) as exc:
        clonequeue.submit(rows, batch="x1", services=services, strict=True)
    assert exc.value.count == 1
    assert exc.value.rejected[0].field == "clone.fileUrl"
    assert services.batches.info("x1") is None
    assert services.redis.exists(services.jobs.keys.job("x-1")) == 0


def test_nothing_accepted_raises_instead_of_returning_a_batch_that_does_not_exist(
    services: Services,
) -> None:
    with pytest.raises(clonequeue.NothingSubmittedError, match="the input holds no job"):
        clonequeue.submit([], batch="n1", services=services)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on top of the exception
        with pytest.raises(clonequeue.RowsRejectedError, match="every row was rejected"):
            clonequeue.submit([{"custom_id": "n-2"}], batch="n1", services=services)
    assert services.batches.info("n1") is None


# --- 6. a cancelled job says who cancelled it and when -------------------------------------


def test_cancelled_jobs_say_who_cancelled_them_and_when(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    rows = [{**row("c-1"), "audios": [{"contentText": "Hello"}]}]
    clonequeue.submit(rows, batch="cx1", services=services)
    cancelled = cli(tmp_path, redis_url, "cancel", "cx1")
    assert cancelled.returncode == 0, cancelled.stderr
    out = cli(tmp_path, redis_url, "results", "cx1")
    record = json.loads(out.stdout)
    assert record["status"] == "cancelled"
    error = record["error"]
    assert error["kind"] == "cancelled"
    assert error["by"].endswith("(clonequeue cancel)")
    assert "@" in error["by"]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(error["at"]))
    assert error["msg"] == f"cancelled by {error['by']} at {when}"
    assert abs(error["at"] - time.time()) < 60
    assert [(a["status"], a["error"]) for a in record["audios"]] == [("cancelled", error)]

    clonequeue.submit([row("c-2")], batch="cx2", services=services)
    clonequeue.Batch("cx2", services=services).cancel(by="nightly-cleanup")
    (again,) = clonequeue.Batch("cx2", services=services).results()
    assert again["error"]["msg"].startswith("cancelled by nightly-cleanup at ")
