"""``GET /_sim/files/<task id>.wav|.srt``: the result files a completed task's URLs name.

Real bytes, so the artifact path runs offline: a WAV (16 kHz, 16-bit mono tone) of
``file_bytes`` bytes, streamed in chunks (a 100 MB file never sits in memory), with
``Content-Length`` and an RFC 9530 ``Repr-Digest`` (SHA-256) so a client can check
what it got. Knobs: ``file_missing_rate`` (404), ``file_truncate_rate`` (the
connection closes halfway through the body), ``file_corrupt_rate`` (one byte changed).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import math
import struct

import tornado.web
from tornado.http1connection import HTTP1Connection

from clonequeue.simulator.engine import Engine

CHUNK_BYTES = 256 * 1024
SAMPLE_RATE = 16_000
WAV_HEADER_BYTES = 44


@functools.cache
def _tone_block() -> bytes:
    """One CHUNK_BYTES block of a 440 Hz tone (a whole number of periods' worth of samples)."""
    samples = CHUNK_BYTES // 2
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)))
        for i in range(samples)
    )


def wav_header(size: int) -> bytes:
    data = size - WAV_HEADER_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", size - 8)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def wav_chunks(size: int) -> list[tuple[int, int]]:
    """(offset into the tone block, length) pieces of the body after the header."""
    left, pieces = size - WAV_HEADER_BYTES, []
    while left > 0:
        n = min(left, CHUNK_BYTES)
        pieces.append((0, n))
        left -= n
    return pieces


@functools.lru_cache(maxsize=8)
def wav_sha256(size: int) -> str:
    digest = hashlib.sha256(wav_header(size))
    block = _tone_block()
    for offset, n in wav_chunks(size):
        digest.update(block[offset : offset + n])
    return base64.b64encode(digest.digest()).decode()


def subtitle_text(task_id: str) -> bytes:
    return f"1\n00:00:00,000 --> 00:00:02,000\nsimulated subtitle of {task_id}\n".encode()


class FileHandler(tornado.web.RequestHandler):
    def initialize(self, engine: Engine) -> None:
        self.engine = engine

    def compute_etag(self) -> None:
        return None

    async def get(self, task_id: str, ext: str) -> None:
        task = self.engine.file_task(task_id)
        fault = self.engine.roll_file_fault()
        if task is None or fault == "missing" or (ext == "srt" and not task.subtitles):
            self.set_status(404)
            self.finish(b"no such file\n")
            return
        if ext == "srt":
            body = subtitle_text(task_id)
            self.set_header("Content-Type", "application/x-subrip")
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            self.set_header("Repr-Digest", f"sha-256=:{digest}:")
            self.finish(body)
            return
        size = self.engine.config.file_bytes
        self.set_header("Content-Type", "audio/wav")
        self.set_header("Content-Length", str(size))
        self.set_header("Repr-Digest", f"sha-256=:{wav_sha256(size)}:")
        cut_at = size // 2 if fault == "truncate" else None
        header = wav_header(size)
        if fault == "corrupt":  # the last header byte: same length, another digest
            header = header[:-1] + bytes([header[-1] ^ 0xFF])
        self.write(header)
        sent, block = WAV_HEADER_BYTES, _tone_block()
        for offset, n in wav_chunks(size):
            if cut_at is not None and sent + n > cut_at:
                self.write(block[offset : offset + (cut_at - sent)])
                await self.flush()
                connection = self.request.connection
                if isinstance(connection, HTTP1Connection):
                    connection.close()
                return
            self.write(block[offset : offset + n])
            sent += n
            await self.flush()
            rate = self.engine.config.file_bytes_per_s
            if rate:
                await asyncio.sleep(n / rate)
        self.finish()
