"""Mask secrets in any text we write: raw, escaped, URL-encoded, base64 or hex.

A secret reaches text in more shapes than its own: ``repr`` of an exception
escapes it (``b'Bearer sk_\\n'``, doubled again inside another repr, or a JSON
string), a URL percent-encodes it, HTTP Basic auth base64-encodes it, a debugging
dump hex-encodes it. :class:`Redactor` matches each registered secret escaped to
any depth, and its URL, base64 (at any byte offset) and hex encodings, and
replaces each one with ``[REDACTED]`` in one regex pass.

One process-wide redactor (:data:`REDACTOR`) is shared by the log handlers
(clonequeue.logs) and Celery's task events (clonequeue.workers.events); settings
register their secrets at start-up and a rotated token registers the new value.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# A derived form this short (e.g. the inner base64 of a 4-byte secret) would mask
# innocent text; the raw secret itself is always masked, whatever its length.
MIN_DERIVED_LEN = 8


_LETTER_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f", "\v": "v", "\a": "a"}


def _escaped_char(char: str) -> str:
    """A regex for ``char`` as it reads after any number of rounds of Python or JSON
    escaping (a repr inside a repr inside a JSON string ...)."""
    if char.isascii() and (char.isalnum() or char == "_"):
        return char  # never escaped
    if char == "\\":
        return r"\\+"
    code = ord(char)
    spellings = [re.escape(char), f"(?i:u{code:04x})"]
    if code < 0x100:
        spellings.append(f"(?i:x{code:02x})")
    if code > 0xFFFF:
        spellings.append(f"(?i:U{code:08x})")
    if char in _LETTER_ESCAPES:
        spellings.append(_LETTER_ESCAPES[char])
    if not char.isascii():  # a bytes repr spells each UTF-8 byte
        spellings.append("".join(rf"\\+(?i:x{byte:02x})" for byte in char.encode()))
    return rf"\\*(?:{'|'.join(spellings)})"


def escaped_pattern(secret: str) -> str:
    """A regex for ``secret`` raw or escaped to any depth (repr, bytes repr, JSON)."""
    return "".join(_escaped_char(char) for char in secret)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that encode only ``data``'s bytes, at each of the 3 offsets
    it can start at inside a longer value (e.g. ``user:secret`` in Basic auth)."""
    cores = set()
    for offset in range(3):
        skip = (3 - offset) % 3  # bytes of data that share a group with what precedes it
        whole = (len(data) - skip) // 3 * 3
        chunk = data[skip : skip + whole]
        if chunk:
            cores.add(base64.b64encode(chunk).decode())
            cores.add(base64.urlsafe_b64encode(chunk).decode())
    return cores


def encoded_forms(secret: str) -> set[str]:
    """``secret`` URL-encoded, base64-encoded (any offset) and hex-encoded: literal texts."""
    data = secret.encode()
    url = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    url |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), u) for u in url}
    hexed = binascii.hexlify(data).decode()
    forms = url | _base64_cores(data) | {hexed, hexed.upper()}
    return {f for f in forms if len(f) >= MIN_DERIVED_LEN and f != secret}


class Redactor:
    """Masks every form of its secrets; thread-safe, cheap when nothing matches."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secrets (a webhook secret, a rotated token); old ones stay masked."""
        new = {s for s in secrets if s} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            # Longest secret first: one that contains another is masked whole.
            secrets = sorted(self._secrets, key=len, reverse=True)
            escaped = [escaped_pattern(secret) for secret in secrets]
            literal = sorted(
                {form for secret in secrets for form in encoded_forms(secret)},
                key=len,
                reverse=True,
            )
            self._pattern = re.compile("|".join(escaped + [re.escape(f) for f in literal]))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    def redact_value(self, value: object) -> object:
        """``value`` with its strings redacted, through lists, tuples and dicts."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        return value


REDACTOR = Redactor()


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secrets to the process-wide redactor used by every log and event path."""
    REDACTOR.add(secrets)


def redact(text: str) -> str:
    """``text`` with every form of every registered secret masked."""
    return REDACTOR.redact(text)
