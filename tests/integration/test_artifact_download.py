"""One download from the simulator's real files: whole, cut short, corrupted, missing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import urllib3

from clonequeue.local.stack import SIMULATOR_TOKEN
from clonequeue.outputs import artifacts
from clonequeue.simulator.config import SimConfig
from clonequeue.simulator.server import serve_in_thread
from tests.integration.slow_receivers import TrickleReceiver

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


def test_a_body_dripped_inside_every_read_timeout_is_given_up_in_time(tmp_path: Path) -> None:
    """A server that sends a byte every 20 ms never trips the 5 s read timeout; the
    download must still end by its own bound (before its claim's lease runs out and a
    second copy starts beside it). Before, 1 MB chunks were filled before any check."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n"
    with TrickleReceiver(
        answer=head + b"x" * 4000, fast_bytes=len(head) + 100, delay_s=0.02
    ) as server:
        started = time.monotonic()
        with pytest.raises(artifacts.DownloadError, match=r"too slow: \d+ bytes in 1 s") as info:
            artifacts.download(
                urllib3.PoolManager(),
                server.url,
                f"file://{tmp_path}/x.wav",
                timeout_s=5,
                give_up_after_s=1.0,
            )
        took = time.monotonic() - started
    assert info.value.retry is True
    assert 1.0 <= took < 3.0  # not the 78 s the whole drip takes
    assert list(tmp_path.iterdir()) == []  # no half file, no .part left


def wav(total: int) -> bytes:
    """A WAV file of ``total`` bytes whose RIFF header says so."""
    return b"RIFF" + (total - 8).to_bytes(4, "little") + b"WAVE" + b"\0" * (total - 12)


@contextmanager
def closing_server(body: bytes) -> Iterator[str]:
    """Answers every GET with ``body`` and no Content-Length, then closes the
    connection: all that ends such a body, whole or cut short."""

    def serve(listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    while b"\r\n\r\n" not in conn.recv(65536):
                        pass
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/a.wav"


def test_a_wav_cut_short_without_content_length_is_not_stored(tmp_path: Path) -> None:
    """QA: a body with no length of its own, cut by a closed connection, was stored as
    the whole file; a WAV says its own length in its header."""
    cut = pytest.raises(artifacts.DownloadError, match="6,000 bytes of the 10,000")
    with closing_server(wav(10_000)[:6_000]) as url, cut as info:
        artifacts.download(urllib3.PoolManager(), url, f"file://{tmp_path}/x.wav", timeout_s=5)
    assert info.value.retry is True
    assert list(tmp_path.iterdir()) == []
    with closing_server(wav(10_000) + b"trailing") as url:  # longer than declared: kept
        stored = artifacts.download(
            urllib3.PoolManager(), url, f"file://{tmp_path}/y.wav", timeout_s=5
        )
    assert stored.bytes == 10_008
