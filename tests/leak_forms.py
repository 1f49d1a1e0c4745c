"""Texts that carry a secret the ways real code leaks one, written out by hand here
(not with clonequeue.redaction's own list, so a form it forgets is caught).

Each form comes with the *needles* that must be gone once it is redacted: for
escaped and URL-encoded forms the canary's letters and digits, which no escaping
changes; for base64 the characters that encode only the secret's bytes.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

# Quotes, a backslash and URL-special characters: each form below differs from the raw one.
CANARY = "sk_canary'\"\\/+=?&%~Zq9xW4mP"
PLAIN = ("sk_canary", "Zq9xW4mP")  # runs that escaping leaves as they are


def _b64(prefix: bytes, data: bytes, suffix: bytes, *, urlsafe: bool = False) -> tuple[str, str]:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(prefix + data + suffix).decode()
    head = -(-len(prefix) // 3) * 4  # groups that hold a byte of the prefix
    return text, text[head:-4]  # the last group may hold the suffix or padding


def leak_forms(secret: str = CANARY) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Form name → (a text holding ``secret`` in that form, needles that must be gone)."""
    data = secret.encode()
    header_error = ValueError(f"Invalid header value {('Bearer ' + secret + chr(10)).encode()!r}")
    lower_pct = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))
    escaped = {
        "raw": f"token={secret}",
        "repr": f"token {secret!r}",
        "bytes repr": f"{data!r}",
        "header ValueError repr": repr(header_error),  # issue 14: b'Bearer sk_…\\n'
        "repr of a repr": repr(repr(header_error)),
        "json": json.dumps({"token": secret}),
        "json in json": json.dumps(json.dumps({"token": secret})),
        "url": f"https://x.example/?t={quote(secret, safe='')}",
        "url plus": f"t={quote_plus(secret)}",
        "url lowercase hex": f"t={lower_pct}",
    }
    forms: dict[str, tuple[str, tuple[str, ...]]] = {k: (v, PLAIN) for k, v in escaped.items()}
    for name, (prefix, suffix, urlsafe) in {
        "base64": (b"", b"", False),
        "base64 basic auth": (b"user:", b"", False),
        "base64 offset 1": (b"u", b"!", False),
        "base64 urlsafe": (b"ab", b"", True),
    }.items():
        text, needle = _b64(prefix, data, suffix, urlsafe=urlsafe)
        forms[name] = (text, (needle,))
    forms["hex"] = (data.hex(), (data.hex(),))
    forms["HEX"] = (data.hex().upper(), (data.hex().upper(),))
    return forms


def leaked(text: str, secret: str = CANARY) -> list[str]:
    """Names of the forms of ``secret`` whose needles are still in ``text``."""
    return [
        name
        for name, (_, needles) in leak_forms(secret).items()
        if any(needle in text for needle in needles)
    ]
