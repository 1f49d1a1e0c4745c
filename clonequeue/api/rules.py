"""The provider's documented input rules as plain functions.

Each check returns the cleaned value or raises ``ValueError`` with a message that
says the rule; the models in :mod:`clonequeue.api.models` attach the field name.
The simulator validates with the same functions, so the two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

from clonequeue.constants import (
    AUDIO_EXTENSIONS,
    PAUSE_MAX_S,
    PAUSE_MIN_S,
    VIDEO_EXTENSIONS,
)

MAX_URL_CHARS = 2048  # not documented; longer URLs are almost surely a mistake
MAX_LANGUAGE_CHARS = 40

# CJK ideographs and their extensions, CJK punctuation and full-width forms.
_CHINESE = re.compile(
    "[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")
_PAUSE_MARKER = re.compile(r"<#(.*?)#>", re.DOTALL)
# ASCII digits only: \d and float() take any script's (৯৯.৯৯, １.５), which the API will
# read as text and bill, while the estimate did not count them (QA pass)
_PAUSE_NUMBER = re.compile(r"^[0-9]+(?:\.([0-9]+))?$")
_ALLOWED_EXTENSIONS = ", ".join(sorted(AUDIO_EXTENSIONS) + sorted(VIDEO_EXTENSIONS))


def check_file_url(url: str) -> str:
    """A public http(s) URL of an audio or video file, as the clone endpoint needs."""
    if not url.strip():
        raise ValueError("must not be empty")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"is {len(url)} characters long; at most {MAX_URL_CHARS} allowed")
    if url.startswith(("/", "./", "../", "~", "\\\\")) or _WINDOWS_PATH.match(url):
        raise ValueError(
            "is a local path; the service downloads the file itself, so give a public http(s) URL"
        )
    if _CHINESE.search(url) or _CHINESE.search(unquote(url)):
        raise ValueError("contains Chinese characters, which the API does not accept in URLs")
    if any(c.isspace() for c in url):
        raise ValueError("contains whitespace; percent-encode it as %20")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise ValueError("is a local file: URL; give a public http(s) URL")
    if scheme not in ("http", "https"):
        shown = f"scheme '{parts.scheme}:'" if parts.scheme else "no scheme"
        raise ValueError(f"has {shown}; only http:// and https:// URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "contains a user name or password (user:password@); it would be stored in Redis "
            "and sent to the provider, so give a URL without them (e.g. a pre-signed link)"
        )
    host = parts.hostname
    if not host:
        raise ValueError("has no host name")
    if not _is_public_host(host):
        raise ValueError(f"host '{host}' is not public; the service cannot download from it")
    _check_port(parts.netloc)
    name = parts.path.rsplit("/", 1)[-1]
    if "." not in name:
        raise ValueError(
            f"has no file extension; the path must end in one of: {_ALLOWED_EXTENSIONS}"
        )
    extension = name.rsplit(".", 1)[1].lower()
    if extension not in AUDIO_EXTENSIONS and extension not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"extension .{extension} is not an audio or video type (allowed: {_ALLOWED_EXTENSIONS})"
        )
    return url


def _check_port(netloc: str) -> None:
    """Read from the text: urlsplit keeps any port, and the download would only fail later."""
    host_port = netloc.rpartition("@")[2]
    port = host_port.rpartition("]")[2].partition(":")[2]  # after an IPv6 literal's "]"
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port} is not a port number; a port is 1 to 65535")


def _is_public_host(host: str) -> bool:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        return "." in lowered  # a bare single-label name is not reachable from outside
    return address.is_global


def check_text(text: str, *, max_chars: int) -> str:
    """Non-blank text within the length limit (counted in Unicode code points)."""
    if not text.strip():
        raise ValueError("must not be empty or blank")
    if len(text) > max_chars:
        raise ValueError(f"is {len(text)} characters long; at most {max_chars} allowed")
    return text


def check_pause_markers(text: str) -> str:
    """Every ``<#x#>`` has x in 0.01–99.99 with at most two decimals; no stray ``<#``."""
    for match in _PAUSE_MARKER.finditer(text):
        marker, value = match.group(0), match.group(1)
        number = _PAUSE_NUMBER.match(value)
        where = f"pause marker '{marker}' at position {match.start()}"
        if number is None:
            raise ValueError(
                f"{where} is malformed: write <#x#> with x a number of seconds, e.g. <#0.5#>"
            )
        if number.group(1) is not None and len(number.group(1)) > 2:
            raise ValueError(f"{where} has more than two decimals")
        if not PAUSE_MIN_S <= float(value) <= PAUSE_MAX_S:
            raise ValueError(
                f"{where} is out of range: "
                f"x must be between {PAUSE_MIN_S} and {PAUSE_MAX_S} seconds"
            )
    stray = _PAUSE_MARKER.sub("", text).find("<#")
    if stray != -1:
        raise ValueError("has an unclosed pause marker '<#'; close it as <#x#>")
    if not strip_pause_markers(text).strip():
        raise ValueError("contains only pause markers; there is nothing to speak")
    return text


def strip_pause_markers(text: str) -> str:
    """The text without its pause markers, as the provider bills it."""
    return _PAUSE_MARKER.sub(lambda m: "" if _PAUSE_NUMBER.match(m.group(1)) else m.group(0), text)


def check_language(language: str) -> str:
    """A language name such as 'English' or 'auto' (the service checks which exist)."""
    if not language.strip():
        raise ValueError("must not be empty (omit it for 'auto')")
    if len(language) > MAX_LANGUAGE_CHARS:
        raise ValueError(f"is {len(language)} characters long; at most {MAX_LANGUAGE_CHARS}")
    return language


def check_model_id(model_id: str) -> str:
    """A modelId as returned by a completed clone task."""
    if not model_id.strip():
        raise ValueError("must not be empty")
    return model_id
