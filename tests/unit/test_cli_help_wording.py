"""What `--help` says matches what the command does (QA pass)."""

from __future__ import annotations

import re

import pytest

from tests.unit.test_cli_help import help_of


def flat_help(*path: str) -> str:
    """The help text with rich's box and line wrapping taken out: one line of words."""
    return re.sub(r"\s+", " ", help_of(*path).replace("│", " ")).strip()


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_submit_help_says_the_fleet_default_is_the_workers_setting() -> None:
    """The submitter's CLONEQUEUE_WEBHOOK_URL / CLONEQUEUE_ARTIFACTS_URL are never read:
    a batch without --webhook/--artifacts gets what the workers have."""
    text = flat_help("submit")
    assert "Default: CLONEQUEUE_WEBHOOK_URL" not in text
    assert "Default: CLONEQUEUE_ARTIFACTS_URL" not in text
    assert (
        "Default: the workers' CLONEQUEUE_WEBHOOK_URL (the fleet default; this shell's is not "
        "used). For an existing batch it applies to the jobs that finish after it: jobs "
        "already finished are not sent." in text
    )
    assert (
        "Default: the workers' CLONEQUEUE_ARTIFACTS_URL (the fleet default; this shell's is "
        "not used). For an existing batch, clonequeue retry BATCH --artifacts copies the "
        "files of jobs already finished." in text
    )


def test_config_show_help_says_every_secret_is_redacted() -> None:
    expected = (
        "every secret is redacted: the API token, the webhook secret, the Sentinel password "
        "and Flower's logins show only whether they are set, and URLs lose their passwords "
        "and query values"
    )
    assert expected in flat_help("config", "show")
    assert expected in flat_help("config")  # the command list shows its first line
    assert "the API token is never shown" not in flat_help("config")
