"""Durable copies: stream a finished audio or subtitle file into an fsspec store.

Bounded memory whatever the size (1 MiB chunks; S3 parts of 5 MiB). The copy is
written to ``<key>.part`` and renamed into place only once its length (and, when
the server sends one, its ``Repr-Digest`` SHA-256) checked out, so a key holds a
whole file or nothing we vouch for; the record's sha256 is the truth.

Layout under the store's URL (README, "Artifacts"):
``{batch}/{custom_id}/preview.<ext>``, ``{batch}/{custom_id}/{audio custom_id}.<ext>``
and ``… /{audio custom_id}.<subtitle ext>``; ``ext`` from the source URL (mp3, srt
when it has none). Characters other than letters, digits, ``. _ -`` become ``_``, and
so do leading dots (no hidden files), plus a short hash of the original, so two ids
cannot meet.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import posixpath
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import fsspec
import urllib3
from fsspec.implementations.local import LocalFileSystem

CHUNK_BYTES = 1 << 20
S3_PART_BYTES = 5 << 20  # S3's smallest multipart part: what one upload holds in memory
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
PREVIEW_STEM = "preview"  # the clone's preview file: <job>/preview.<ext>


class DownloadError(Exception):
    """A download that did not give a whole file; ``retry`` says whether to try again."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Stored:
    url: str
    bytes: int
    sha256: str
    seconds: float

    def fields(self) -> dict[str, Any]:
        return {"url": self.url, "bytes": self.bytes, "sha256": self.sha256}


def safe_name(value: str) -> str:
    """A file name for an id: no path, no hidden dotfile, never ``.`` or ``..``.

    A changed id gets a short hash of the original, so two ids cannot meet.
    """
    cleaned = _SAFE.sub("_", value)
    undotted = cleaned.lstrip(".")
    cleaned = "_" * (len(cleaned) - len(undotted)) + undotted
    if cleaned != value:
        cleaned = f"{cleaned}_{hashlib.sha1(value.encode()).hexdigest()[:8]}"
    return cleaned


def audio_stem(custom_id: str) -> str:
    """An audio's file name without extension: :func:`safe_name`, and never the preview's
    (an audio named ``preview`` overwrote the clone's preview file; QA pass): that name
    gets the hash a changed id gets."""
    stem = safe_name(custom_id)
    if stem.lower() == PREVIEW_STEM:
        stem = f"{stem}_{hashlib.sha1(custom_id.encode()).hexdigest()[:8]}"
    return stem


def extension(source_url: str, default: str) -> str:
    ext = posixpath.splitext(urlsplit(source_url).path)[1].lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,5}", ext) else default


def destination(store_url: str, batch: str, job: str, name: str) -> str:
    """The full fsspec URL of one artifact."""
    return "/".join((store_url.rstrip("/"), safe_name(batch), safe_name(job), name))


def _open_options(fs: Any) -> dict[str, Any]:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return {"block_size": S3_PART_BYTES} if protocol in ("s3", "s3a") else {}


def is_stored(dest: str, sha256: str, size: int) -> bool:
    """Whether ``dest`` holds exactly the bytes recorded (read back, streaming)."""
    fs, path = fsspec.core.url_to_fs(dest)
    try:
        if not fs.exists(path) or fs.size(path) != size:
            return False
        digest = hashlib.sha256()
        with fs.open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256


def _expected_digest(headers: Any) -> str | None:
    """The SHA-256 a server vouches for (RFC 9530 ``Repr-Digest: sha-256=:b64:``), as hex."""
    for header in ("repr-digest", "content-digest"):
        value = headers.get(header)
        if value:
            match = re.search(r"sha-256=:([A-Za-z0-9+/=]+):", value)
            if match:
                return base64.b64decode(match.group(1)).hex()
    return None


WAV_HEADER_BYTES = 12


def wav_declared_size(head: bytes) -> int | None:
    """The file size a WAV's RIFF header declares, if it declares one.

    A body sent without ``Content-Length`` (or chunked framing) ends where the server
    closes the connection, so one cut short looks whole; a WAV says its own length.
    Streaming encoders write 0 or 0xFFFFFFFF when they do not know it: no size then.
    """
    if len(head) < WAV_HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    declared = int.from_bytes(head[4:8], "little")
    return None if declared in (0, 0xFFFFFFFF) else declared + 8


# What the store raises (a full disk, a permission, a missing bucket, a read-only
# protocol): an attempt that failed, said so, not a crash that left the item "sending"
# and re-driven after every lease (QA pass).
STORE_ERRORS = (OSError, NotImplementedError, ValueError)


def store_error(exc: BaseException) -> DownloadError:
    retry = isinstance(exc, OSError) and not isinstance(exc, PermissionError)
    return DownloadError(f"cannot write to the store ({type(exc).__name__}: {exc})", retry=retry)


def download(
    http: urllib3.PoolManager,
    source: str,
    dest: str,
    *,
    timeout_s: float,
    give_up_after_s: float | None = None,
) -> Stored:
    """Stream ``source`` into ``dest``; :class:`DownloadError` when it cannot be trusted.

    ``give_up_after_s`` bounds the whole download (``timeout_s`` only the wait for each
    read): a server that drips its body a byte inside every read timeout is given up
    before the claim's lease runs out, so no second copy starts beside a live one.
    """
    started = time.monotonic()
    try:
        response = http.request(
            "GET", source, preload_content=False, redirect=True,
            # a pooled connection the server closed meanwhile is retried once; GET is safe
            retries=urllib3.Retry(total=2, connect=1, read=1, status=0, redirect=3),
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
        )  # fmt: skip
    except urllib3.exceptions.HTTPError as exc:
        raise DownloadError(
            f"no answer from the file's server ({type(exc).__name__})", retry=True
        ) from None
    try:
        if response.status != 200:
            retry = response.status in (408, 429) or response.status >= 500
            raise DownloadError(f"HTTP {response.status} from the file's server", retry=retry)
        length = response.headers.get("content-length")
        expected_size = int(length) if length and length.isdigit() else None
        expected_sha = _expected_digest(response.headers)
        fs, path = fsspec.core.url_to_fs(dest)
        part = f"{path}.{uuid.uuid4().hex[:8]}.part"  # two racing copies never share one
        digest, size, head = hashlib.sha256(), 0, b""
        try:
            if isinstance(fs, LocalFileSystem):
                # only a folder: on S3 makedirs creates the bucket, so a mistyped one
                # was made and filled in silence (QA pass); object stores need no folders
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
            with fs.open(part, "wb", **_open_options(fs)) as sink:
                while True:
                    # read1: what has come, not a full chunk (which a drip fills for ever),
                    # so the time is checked as each piece arrives
                    try:
                        chunk = response.read1(CHUNK_BYTES, decode_content=False)
                    except (urllib3.exceptions.HTTPError, OSError) as exc:
                        got = f"{size:,} of {expected_size:,}" if expected_size else f"{size:,}"
                        raise DownloadError(
                            f"body cut short after {got} bytes ({type(exc).__name__})",
                            retry=True,
                        ) from None
                    if not chunk:
                        break
                    elapsed = time.monotonic() - started
                    if give_up_after_s is not None and elapsed > give_up_after_s:
                        raise DownloadError(
                            f"too slow: {size:,} bytes in {elapsed:.0f} s, given up before "
                            "the claim's lease (CLONEQUEUE_ARTIFACT_LEASE_S) runs out",
                            retry=True,
                        )
                    if len(head) < WAV_HEADER_BYTES:
                        head += chunk[: WAV_HEADER_BYTES - len(head)]
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
            if expected_size is not None and size != expected_size:
                raise DownloadError(
                    f"body truncated: {size:,} of {expected_size:,} bytes", retry=True
                )
            declared = wav_declared_size(head) if expected_size is None else None
            if declared is not None and size < declared:  # only the close ended it
                raise DownloadError(
                    f"body cut short: {size:,} bytes of the {declared:,} its WAV header "
                    "declares (the server sent no Content-Length)",
                    retry=True,
                )
            if expected_sha is not None and digest.hexdigest() != expected_sha:
                raise DownloadError(
                    f"checksum mismatch: got sha256 {digest.hexdigest()[:16]}…, the "
                    f"server's Repr-Digest says {expected_sha[:16]}…",
                    retry=True,
                )
            fs.mv(part, path)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                fs.rm(part)
            if isinstance(exc, STORE_ERRORS):  # the body's own errors are DownloadErrors
                raise store_error(exc) from None
            raise
    finally:
        response.release_conn()
    return Stored(dest, size, digest.hexdigest(), time.monotonic() - started)
