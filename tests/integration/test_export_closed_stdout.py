"""`results`/`errors BATCH | head -1`: a reader that stops early is not an error (QA pass).

`results BATCH -f csv | head -1` exited 1 without a word (click's answer to EPIPE),
and so did JSONL once the output outgrew the pipe's buffer; a shell pipeline with
`set -o pipefail` then failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import clonequeue
from clonequeue.services import Services
from tests.integration.test_producers_submit import row

JOBS = 1_000  # several times a pipe's 64 KiB buffer, in either format


@pytest.fixture
def big_batch(services: Services) -> str:
    clonequeue.submit([row(f"cs{i:04}") for i in range(JOBS)], batch="cs", services=services)
    clonequeue.Batch("cs", services=services).cancel()  # every job in `errors` too
    return "cs"


@pytest.mark.parametrize("command", ["results", "errors"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_reader_that_closes_stdout_early_ends_the_export_quietly(
    big_batch: str, redis_url: str, tmp_path: Path, command: str, fmt: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    env.update(CLONEQUEUE_REDIS_URL=redis_url, CLONEQUEUE_NAMESPACE="p")
    child = subprocess.Popen(
        [sys.executable, "-m", "clonequeue", command, big_batch, "-f", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    first = child.stdout.readline()  # what `head -1` reads, then it goes
    child.stdout.close()
    returncode = child.wait(timeout=60)
    stderr = child.stderr.read().decode()
    child.stderr.close()
    assert first.startswith(b"custom_id," if fmt == "csv" else b'{"custom_id": "cs0000"')
    assert (returncode, stderr) == (0, "")
