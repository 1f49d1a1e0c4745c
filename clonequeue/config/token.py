"""The API token: cleaned and checked once, wherever it comes from, and re-read when
its file changes (a rotated secret) without restarting anything.

A token from ``echo``, a secret manager or ``$(cat file)`` often ends in a newline;
HTTP refuses such a header value before a byte is sent. Surrounding whitespace is
stripped; anything else that cannot be in a bearer token is refused at start-up in
one line that says what to fix.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clonequeue.redaction import register_secrets

log = logging.getLogger(__name__)

TOKEN_FILE_CHECK_S = 5.0  # a changed token file is seen within this long (one stat per period)


def clean_token(raw: str, *, source: str) -> str:
    """``raw`` without surrounding whitespace; ValueError if what is left cannot be a token.

    The message names ``source`` (the variable or file) and the fix, never the token.
    """
    token = raw.strip()
    if not token:
        raise ValueError(f"{source} is empty: put the API token in it")
    for position, char in enumerate(token, start=1):
        if not "!" <= char <= "~":
            what = "a space" if char.isspace() else "a control or non-ASCII character"
            raise ValueError(
                f"{source} holds {what} at character {position} of {len(token)}: a token is "
                "one word of printable ASCII; copy it again without spaces or line breaks"
            )
    return token


def read_token_file(path: Path) -> str:
    """The cleaned token in ``path``; ValueError naming the file and the problem."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ValueError(f"CLONEQUEUE_API_TOKEN_FILE: cannot read {path}: {reason}") from None
    return clean_token(raw, source=f"CLONEQUEUE_API_TOKEN_FILE ({path})")


class TokenSource:
    """The current token, and its ``Authorization`` header value.

    With a token file, the file's mtime is checked at most every ``check_every_s``
    (one ``stat`` per period, not per request) and the file read again when it
    changed. :meth:`reload` re-reads it at once (after a 401). A file that cannot be
    read or holds no valid token keeps the previous token, with a warning.
    """

    def __init__(
        self,
        token: str,
        path: Path | None = None,
        *,
        check_every_s: float = TOKEN_FILE_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._check_every_s = check_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token = clean_token(token, source="the API token")
        self._header = f"Bearer {self._token}"
        self._mtime = self._stat() if path is not None else None
        self._checked_at = clock()
        register_secrets([self._token])

    @property
    def path(self) -> Path | None:
        return self._path

    def header(self) -> str:
        """``Bearer <token>``, re-read first if the token file changed (checked cheaply)."""
        if self._path is not None and self._clock() - self._checked_at >= self._check_every_s:
            self._refresh(force=False)
        return self._header

    def reload(self) -> bool:
        """Read the token file again now; True if the token changed (False without a file)."""
        if self._path is None:
            return False
        return self._refresh(force=True)

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._path is not None
        try:
            st = os.stat(self._path)  # follows symlinks: Kubernetes swaps a ..data link
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self, *, force: bool) -> bool:
        assert self._path is not None
        with self._lock:
            if not force and self._clock() - self._checked_at < self._check_every_s:
                return False  # another thread checked while this one waited
            self._checked_at = self._clock()
            mtime = self._stat()
            if not force and mtime == self._mtime:
                return False
            try:
                token = read_token_file(self._path)
            except ValueError as exc:
                log.warning("%s; still using the previous token", exc)
                return False
            self._mtime = mtime
            if token == self._token:
                return False
            register_secrets([token])  # masked in logs before it is ever used
            self._token, self._header = token, f"Bearer {token}"
        log.info("the API token changed in %s: using the new one", self._path)
        return True
