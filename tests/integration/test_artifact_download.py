"""One download from the simulator's real files: whole, cut short, corrupted, missing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from clonequeue.local.stack import SIMULATOR_TOKEN
from clonequeue.outputs import artifacts
from clonequeue.simulator.config import SimConfig
from clonequeue.simulator.server import serve_in_thread

SIZE = 2_000_044


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    config = SimConfig(clone_queue_s=0, clone_processing_s=0, file_bytes=SIZE)
    with serve_in_thread(config) as running:
        yield running.url


def file_url(base: str) -> str:
    http = urllib3.PoolManager()
    answer = http.request(
        "POST",
        f"{base}/api/open-api/v1/soundCloning/clones",
        body=json.dumps({"fileUrl": "https://voices.example.com/a.mp3"}),
        headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}", "Content-Type": "application/json"},
    )
    task = json.loads(answer.data)["data"]["id"]
    poll = http.request(
        "GET",
        f"{base}/api/open-api/v1/audios/{task}",
        headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"},
    )
    url = json.loads(poll.data)["data"]["audioUrl"]
    assert url.startswith(f"{base}/_sim/files/")  # the simulator serves its own files
    return str(url)


def knobs(base: str, **values: float) -> None:
    urllib3.request("PATCH", f"{base}/_sim/config", body=json.dumps(values))


@pytest.fixture
def url(sim: str) -> Iterator[str]:
    knobs(sim, file_missing_rate=0, file_truncate_rate=0, file_corrupt_rate=0)
    yield file_url(sim)
    knobs(sim, file_missing_rate=0, file_truncate_rate=0, file_corrupt_rate=0)


def test_a_whole_file_is_stored_with_its_checksum(url: str, tmp_path: Path) -> None:
    dest = f"file://{tmp_path}/b/j/preview.wav"
    stored = artifacts.download(urllib3.PoolManager(), url, dest, timeout_s=5)
    data = (tmp_path / "b/j/preview.wav").read_bytes()
    assert stored.bytes == SIZE == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert data[:4] == b"RIFF"
    assert artifacts.is_stored(dest, stored.sha256, stored.bytes)
    assert not artifacts.is_stored(dest, "0" * 64, stored.bytes)
    assert [p.name for p in (tmp_path / "b/j").iterdir()] == ["preview.wav"]


@pytest.mark.parametrize(
    ("knob", "reason", "retry"),
    [
        ("file_truncate_rate", "cut short", True),
        ("file_corrupt_rate", "checksum mismatch", True),
        ("file_missing_rate", "HTTP 404", False),
    ],
)
def test_a_bad_body_is_never_stored(
    sim: str, url: str, tmp_path: Path, knob: str, reason: str, retry: bool
) -> None:
    knobs(sim, **{knob: 1.0})
    with pytest.raises(artifacts.DownloadError, match=reason) as info:
        artifacts.download(urllib3.PoolManager(), url, f"file://{tmp_path}/x.wav", timeout_s=5)
    assert info.value.retry is retry
    assert list(tmp_path.iterdir()) == []  # no half file, no .part left


def test_a_store_that_cannot_be_written_is_a_failed_attempt_not_a_crash(
    url: str, tmp_path: Path
) -> None:
    """QA: a store error (here a folder that is a file) escaped as an exception, left the
    item "sending" and was re-driven after every lease, with no error said."""
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(artifacts.DownloadError, match=r"cannot write to the store \(") as info:
        artifacts.download(
            urllib3.PoolManager(), url, f"file://{tmp_path}/taken/j/x.wav", timeout_s=5
        )
    assert info.value.retry is True  # a full disk or a missing folder may be fixed
