"""What the CLI says when a new user's first tries go wrong (second QA pass, from the README).

Each case runs the real ``clonequeue`` as a child process on the suite's Redis: a port
already taken, a webhook given to a batch that had finished, every row of a file
rejected for a batch that exists, an unfinished purge, and ``estimate``'s edges.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonequeue
from clonequeue.local import LOCALHOST, free_port
from clonequeue.outputs.runner import ResultsContext, run_pass
from clonequeue.services import Services
from tests.integration.test_producers_submit import HOOK, cli, row, write_jsonl

# --- 3. a port already in use: one error line naming the option, not a traceback ------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on (127.0.0.1), for as long as the test runs."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((LOCALHOST, free_port()))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def test_a_worker_whose_metrics_port_is_taken_says_so_in_one_line(
    redis_url: str, tmp_path: Path, taken_port: int
) -> None:
    settings = {
        "CLONEQUEUE_API_TOKEN": "sim-token",
        "CLONEQUEUE_API_BASE_URL": "http://127.0.0.1:1",  # never called: it stops before
    }
    done = cli(tmp_path, redis_url, "worker", "--metrics-port", str(taken_port), settings=settings)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: port {taken_port} on 0.0.0.0 is already in use: pick another with --metrics-port"
    )


def test_an_exporter_whose_port_is_taken_says_so_in_one_line(
    redis_url: str, tmp_path: Path, taken_port: int
) -> None:
    done = cli(tmp_path, redis_url, "exporter", "-p", str(taken_port))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"error: port {taken_port} on 127.0.0.1 is already in use: pick another with --port\n"
    )


def test_flower_whose_port_is_taken_says_so_in_one_line(
    redis_url: str, tmp_path: Path, taken_port: int
) -> None:
    done = cli(tmp_path, redis_url, "flower", "--no-auth", "-p", str(taken_port))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: port {taken_port} on 127.0.0.1 is already in use: pick another with --port"
    )


# --- 4. a webhook set after every job of the batch had finished --------------------------------

LATE = (
    "batch late has a webhook but no deliveries, and none will be made: its jobs had all "
    "finished before the webhook was set, and a job's event is sent only as it finishes "
    "(--redeliver sends again only deliveries that were made); `clonequeue results late` has "
    "their records\n"
)


def test_a_webhook_set_after_the_batch_finished_says_none_will_come(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("lt1")], batch="late", services=services)
    clonequeue.Batch("late", services=services).cancel()
    # the workers' results pass reads the finished job's event: no webhook, no delivery
    run_pass(ResultsContext(services.settings, services.redis, publish=lambda *_: None))
    clonequeue.submit([row("lt1")], batch="late", services=services, webhook=HOOK)

    listed = cli(tmp_path, redis_url, "webhooks", "late")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, LATE, "")
    again = cli(tmp_path, redis_url, "webhooks", "late", "--redeliver", "--json")
    assert (again.returncode, again.stdout) == (0, "")
    assert again.stderr == f"0 deliveries queued again\nnote: {LATE}"


def test_a_finished_batch_whose_events_are_not_read_yet_gets_its_deliveries_yet(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """Cancelled while no worker runs: its events wait in the stream, and the deliveries
    will be made once a worker reads them, so "none will be made" would be wrong."""
    clonequeue.submit([row("wt1")], batch="wt", services=services, webhook=HOOK)
    clonequeue.Batch("wt", services=services).cancel()
    listed = cli(tmp_path, redis_url, "webhooks", "wt")
    assert listed.stdout == "batch wt: no deliveries yet (one is made as each job finishes)\n"


# --- 5. every row rejected, for a batch that exists -----------------------------------------


def test_every_row_rejected_for_an_existing_batch_says_it_was_left_as_it_was(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("ex1")], batch="march", services=services)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"custom_id": "ex2"}])
    done = cli(tmp_path, redis_url, "submit", str(bad), "--batch", "march")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1].endswith(
        "; every row was rejected; nothing was submitted and batch march was left as it was"
    )
    dry = cli(tmp_path, redis_url, "submit", str(bad), "--batch", "march", "--dry-run")
    assert dry.stderr.splitlines()[-1].endswith(
        "nothing would be submitted and batch march would be left as it was"
    )
    new = cli(tmp_path, redis_url, "submit", str(bad), "--batch", "april")
    assert new.stderr.splitlines()[-1].endswith(
        "nothing was submitted and batch april was not created"
    )
    with pytest.raises(clonequeue.NothingSubmittedError, match="batch march was left as it was"):
        clonequeue.submit([{"custom_id": "ex3"}], batch="march", services=services)
    with pytest.raises(clonequeue.NothingSubmittedError, match="batch march was left as it was"):
        clonequeue.submit(iter([]), batch="march", services=services)


# --- 6. a dry run's warning says nothing was submitted --------------------------------------


def test_a_dry_runs_rejected_rows_warning_is_worded_for_a_dry_run(services: Services) -> None:
    rows = [row("dr1"), {"custom_id": "dr2"}]
    with pytest.warns(clonequeue.RejectedRowsWarning) as caught:
        clonequeue.submit(rows, batch="dry", dry_run=True, services=services)
    message = str(caught[0].message)
    assert message.endswith(
        "; a dry run submits nothing; these rows would be rejected and the others accepted: "
        "see batch.rejected"
    )
    assert "were not submitted" not in message
    with warnings.catch_warnings(record=True) as real:
        warnings.simplefilter("always")
        clonequeue.submit(rows, batch="wet", services=services)
    assert str(real[0].message).endswith(
        "; they were not submitted, the other rows were: see batch.rejected"
    )


# --- 12. purge from the CLI names --force ------------------------------------------------


def test_an_unfinished_purge_from_the_cli_names_force(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("fr1"), row("fr2")], batch="fr1", services=services)
    done = cli(tmp_path, redis_url, "purge", "fr1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: batch fr1 has 2 unfinished jobs; wait, or purge with --force, which cancels "
        "the batch first\n"
    )


def test_a_forced_purge_from_the_cli_says_force_cancelled_it(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("fp1"), row("fp2")], batch="fp", services=services)
    services.jobs.claim_create("fp1", "c", 0, now=services.now(), lease_s=60)  # in flight
    done = cli(tmp_path, redis_url, "purge", "fp", "--force")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: batch fp has 1 unfinished job; --force cancelled the batch (1 stopped, 1 in "
        "flight finish their current step first); run purge again once they finish\n"
    )


# --- 9, 10. estimate: an input with no job; more rejected rows than shown ----------------------


def test_estimate_of_an_empty_input_says_it_holds_no_job(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    done = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", str(empty))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: the input holds no job (it is empty, or has only blank lines); nothing to "
        "estimate\n"
    )
    as_json = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", str(empty), "--json")
    assert as_json.returncode == 1
    assert '"error": "the input holds no job' in as_json.stdout
    helped = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", "--help")
    assert "1: the input holds no job" in " ".join(helped.stdout.split())


def test_estimate_names_errors_file_for_the_rejected_rows_not_shown(tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"custom_id": f"b{i}"} for i in range(25)])
    done = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", str(bad))
    assert done.returncode == 3
    assert "… and 5 more rejected rows; `--errors FILE` writes them all to FILE\n" in done.stderr
    kept = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", str(bad), "--errors", "e.jsonl")
    assert "… and 5 more rejected rows (all in e.jsonl)\n" in kept.stderr


def test_csv_format_given_for_a_jsonl_file_says_it_looks_like_jsonl(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "jobs.jsonl", [row("j1"), row("j2")])
    done = cli(tmp_path, "redis://127.0.0.1:1/0", "estimate", "-f", "csv", str(jsonl))
    assert done.returncode == 3
    rejected = [line for line in done.stderr.splitlines() if line.startswith("rejected:")]
    assert rejected == [
        "rejected: line 1: CSV header: line 1 starts with '{', so this looks like JSONL (one "
        "JSON object per line), not CSV: read it as JSONL (--format jsonl, "
        'format="jsonl" in Python, or a name ending in .jsonl)'
    ]
    assert "unknown column" not in done.stderr
