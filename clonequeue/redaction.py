"""Mask secrets in any text we write: raw, escaped, URL-encoded, base64 or hex.

A secret reaches text in more shapes than its own: ``repr`` of an exception
escapes it (``b'Bearer sk_\\n'``, doubled again inside another repr, or a JSON
string), a URL percent-encodes it (with any set of characters left as they are,
or twice), an HTML page escapes its quotes (``&#x27;``, ``&quot;``), HTTP Basic
auth base64-encodes it, a debugging dump hex-encodes it (``74:6f:6b``, ``\\x74``),
and a wrapped line or an API's echo splits it with a line break. :class:`Redactor`
matches each registered secret in all of these, and replaces each one with
``[REDACTED]`` in one regex pass. A webhook secret (``whsec_`` + base64 of its key)
is also masked without its prefix, and its key in hex, base64 and as a bytes repr.

One process-wide redactor (:data:`REDACTOR`) is shared by the log handlers
(clonequeue.logs) and Celery's task events (clonequeue.workers.events); settings
register their secrets at start-up and a rotated token registers the new value.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# A derived form this short (e.g. the inner base64 of a 4-byte secret) would mask
# innocent text; the raw secret itself is always masked, whatever its length.
MIN_DERIVED_LEN = 8
WEBHOOK_SECRET_PREFIX = "whsec_"

_LETTER_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f", "\v": "v", "\a": "a"}
# What may split a secret of MIN_DERIVED_LEN or more characters where it is printed: a
# wrapped line, an API echoing it with a line break, or that break escaped (``\\r\\n``).
_SPLIT = r"(?:\s|\\+[nrt])*"
_SPLIT_POSSESSIVE = _SPLIT + "+"  # gives nothing back: ~30% faster on a line of prose
# Between two hex bytes of a dump: nothing, or one separator (``74:6f``, ``74 6f``).
_HEX_SEPARATOR = r"[\s:.-]?"


def _percent(data: bytes) -> str:
    """``data`` percent-encoded, the hex digits in either case, the ``%`` encoded again
    any number of times (a URL inside a URL's query)."""
    return "".join(f"%(?:25)*(?i:{byte:02x})" for byte in data)


def _html_entity(char: str) -> str:
    """``char`` as an HTML character reference, by name or number, escaped again any
    number of times (``&amp;quot;``)."""
    code = ord(char)
    names = [f"#0*{code}", f"#[xX]0*(?i:{code:x})"]
    named = html.escape(char, quote=True)
    if named != char:
        names.append(re.escape(named[1:-1]))
    if char == "'":
        names.append("apos")
    return f"&(?:amp;)*(?:{'|'.join(names)});"


def _escaped_char(char: str) -> str:
    """A regex for ``char`` as it reads after any number of rounds of Python or JSON
    escaping (a repr inside a repr inside a JSON string ...), URL-encoding (whatever
    is left as it is) or HTML escaping."""
    if char.isascii() and (char.isalnum() or char == "_"):
        return char  # never escaped
    if char == "\\":
        return rf"(?:\\+|{_percent(char.encode())}|{_html_entity(char)})"
    code = ord(char)
    spellings = [re.escape(char), f"(?i:u{code:04x})"]
    if code < 0x100:
        spellings.append(f"(?i:x{code:02x})")
    if code > 0xFFFF:
        spellings.append(f"(?i:U{code:08x})")
        high, low = divmod(code - 0x10000, 0x400)  # JSON's surrogate pair
        spellings.append(rf"(?i:u{0xD800 + high:04x})\\+(?i:u{0xDC00 + low:04x})")
    if char in _LETTER_ESCAPES:
        spellings.append(_LETTER_ESCAPES[char])
    if not char.isascii():  # a bytes repr spells each UTF-8 byte
        spellings.append("".join(rf"\\+(?i:x{byte:02x})" for byte in char.encode()))
    spellings.append(_percent(char.encode()))
    if char == " ":
        spellings.append(r"\+")  # quote_plus
    if char.isascii():
        spellings.append(_html_entity(char))
    return rf"\\*(?:{'|'.join(spellings)})"


def escaped_pattern(secret: str) -> str:
    """A regex for ``secret`` raw or escaped to any depth (repr, bytes repr, JSON), URL-
    encoded or HTML-escaped; one of MIN_DERIVED_LEN or more characters may be split by
    whitespace or an escaped line break anywhere."""
    split = ""
    if len(secret) >= MIN_DERIVED_LEN:  # possessive unless the secret's own text could be taken
        split = _SPLIT if "\\" in secret or any(c.isspace() for c in secret) else _SPLIT_POSSESSIVE
    return split.join(_escaped_char(char) for char in secret)


def _hex_digits(text: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in text)


def hex_patterns(data: bytes) -> set[str]:
    """Regexes for ``data`` in hex, either case, its bytes run together or separated
    (``746f6b``, ``74 6f 6b``, ``74:6F:6B``). Each begins with a plain character (no
    class, no ``(?i:``): that keeps the whole pattern's fast first-character scan."""
    digits = data.hex()
    rest = _HEX_SEPARATOR + _HEX_SEPARATOR.join(_hex_digits(f"{b:02x}") for b in data[1:])
    return {first + _hex_digits(digits[1]) + rest for first in {digits[0], digits[0].upper()}}


def escaped_bytes_pattern(data: bytes) -> str:
    """A regex for ``data`` with every byte ``\\x``-escaped (``\\x74\\x6f``), once or in a
    repr (two backslashes), the hex digits in either case."""
    return "".join(rf"\\\\?x{_hex_digits(f'{b:02x}')}" for b in data)


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


def webhook_key(secret: str) -> bytes | None:
    """The key a ``whsec_…`` secret encodes (None: ``secret`` is not one)."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    try:
        return base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None


def encoded_forms(secret: str) -> set[str]:
    """``secret`` base64-encoded (any offset): literal texts (its escaped, URL and hex
    forms are patterns)."""
    forms = _base64_cores(secret.encode())
    return {f for f in forms if len(f) >= MIN_DERIVED_LEN and f != secret}


def _with_parts(secrets: Iterable[str]) -> set[str]:
    """``secrets`` and what must be masked on its own: a webhook secret's base64 text."""
    found = set()
    for secret in secrets:
        found.add(secret)
        if webhook_key(secret) is not None:
            found.add(secret[len(WEBHOOK_SECRET_PREFIX) :])
    return found


def _patterns(secrets: Iterable[str]) -> list[str]:
    """The regex alternatives for ``secrets``, each matching one form: the longest first,
    so that a secret that contains another is masked whole."""
    weighted: dict[str, int] = {}
    for secret in secrets:
        weighted[escaped_pattern(secret)] = 3 * len(secret)
        data = secret.encode()
        if len(data) * 2 >= MIN_DERIVED_LEN:
            weighted.update(dict.fromkeys(hex_patterns(data), 2 * len(data)))
            weighted[escaped_bytes_pattern(data)] = 4 * len(data)
        for form in encoded_forms(secret):
            weighted.setdefault(re.escape(form), len(form))
        key = webhook_key(secret)
        if key is not None:  # the key itself: hex, base64 (urlsafe too), a bytes repr
            weighted.update(dict.fromkeys(hex_patterns(key), 2 * len(key)))
            shown = repr(key)[2:-1]
            for form in _base64_cores(key) | {shown, shown.replace("\\", "\\\\")}:
                weighted.setdefault(re.escape(form), len(form))
    return sorted(weighted, key=lambda p: weighted[p], reverse=True)


class Redactor:
    """Masks every form of its secrets; thread-safe, cheap when nothing matches."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secrets (a webhook secret, a rotated token); old ones stay masked."""
        new = _with_parts(s for s in secrets if s) - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            self._pattern = re.compile("|".join(_patterns(self._secrets)))

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
