"""What `webhooks BATCH` says when a batch has no delivery is true (QA pass).

It said "CLONEQUEUE_WEBHOOK_URL is not set here (submit with --webhook URL to add
one)": the submitter's setting is never used (the fleet default is the workers'),
and `--webhook` given for a finished batch attaches a URL that nothing is ever sent
to (a finished job sends no event).
"""

from __future__ import annotations

import json
from pathlib import Path

import clonequeue
from clonequeue.services import Services
from tests.integration.test_producers_submit import HOOK, cli, row

FINISHED = (
    "batch fw has no webhook: it was submitted without --webhook, and no delivery was made "
    "under the fleet default, the workers' CLONEQUEUE_WEBHOOK_URL (this shell's is not used). "
    "Its jobs have all finished, and a finished job is not sent: `clonequeue submit FILE "
    "--batch fw --webhook URL` would apply to new rows only\n"
)


def test_a_finished_batch_without_a_webhook_says_a_new_one_applies_to_new_rows_only(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("fw1")], batch="fw", services=services)
    clonequeue.Batch("fw", services=services).cancel()
    here = {"CLONEQUEUE_WEBHOOK_URL": HOOK}  # set in this shell: it changes nothing
    listed = cli(tmp_path, redis_url, "webhooks", "fw", settings=here)
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, FINISHED, "")


def test_webhooks_json_of_a_batch_without_deliveries_prints_no_line_and_a_note(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    """`--json` is JSON Lines, one object per delivery, like `batches --json`: none is no
    line (a pipeline reading objects gets none that is not a delivery); why goes to
    stderr as a `note:`, as `submit --json` gives its notes."""
    clonequeue.submit([row("fw1")], batch="fw", services=services)
    clonequeue.Batch("fw", services=services).cancel()
    as_json = cli(tmp_path, redis_url, "webhooks", "fw", "--json")
    assert (as_json.returncode, as_json.stdout) == (0, "")
    assert as_json.stderr == f"note: {FINISHED}"

    clonequeue.submit([row("hw1")], batch="hw", services=services, webhook=HOOK)
    waiting = cli(tmp_path, redis_url, "webhooks", "hw", "--json")
    assert (waiting.returncode, waiting.stdout) == (0, "")
    assert waiting.stderr == (
        "note: batch hw: no deliveries yet (one is made as each job finishes)\n"
    )
    unknown = cli(tmp_path, redis_url, "webhooks", "nope", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"].startswith("no batch 'nope'")
