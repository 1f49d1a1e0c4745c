"""Undone claims are summed up, not said one by one (QA: 195 warning+error pairs in the
minute after a failover, for a state the replica window makes expected)."""

from __future__ import annotations

import logging
import time

import pytest

from clonequeue.store import jobs


def test_undone_claims_are_said_once_then_summed_up_by_a_timer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(jobs, "SAY_EVERY_S", 0.3)
    undone = jobs._UndoneClaims()
    with caplog.at_level(logging.WARNING, logger="clonequeue.store.jobs"):
        for i in range(5):
            undone.said(f"j{i}", "the claim reached fewer than 2 Redis replicas", "ok",
                        master_only=i >= 3)  # fmt: skip
        assert [r.levelname for r in caplog.records] == ["WARNING"]  # the first, at once
        deadline = time.monotonic() + 5
        while len(caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records]
    assert (
        lines[0]
        == "create of job j0 not sent: the claim reached fewer than 2 Redis replicas (release: ok)"
    )
    assert lines[1].startswith("create of job j4 not sent:")
    assert lines[1].endswith("; 3 more like it in the last minute")
    assert lines[2].startswith(
        "2 undone claim(s), the last of job j4, are on the Redis master only"
    )
    assert len(lines) == 3
