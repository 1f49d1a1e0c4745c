"""The envelope codes the simulator answers with, and the exception that carries one.

The provider does not document its error codes; these are ours, chosen so the
HTTP status can be read off the code (``40200`` goes with 402) the way the client's
defensive classifier expects.
"""

from __future__ import annotations

from typing import Any

from clonequeue.constants import SUCCESS_CODE

OK = SUCCESS_CODE
BAD_REQUEST = 40000
UNKNOWN_MODEL = 40004
MODEL_EXPIRED = 40010
UNAUTHORIZED = 40100
INSUFFICIENT_BALANCE = 40200
NOT_FOUND = 40400
RATE_LIMITED = 42900
SERVER_ERROR = 50000


def envelope(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    """The provider's answer shape: ``{"code", "msg", "data"}``."""
    return {"code": code, "msg": msg, "data": data}


class Rejection(Exception):
    """An error answer decided by the engine: not a simulator failure, a scripted "no".

    ``retry_after_s`` becomes a ``Retry-After`` header (429 answers).
    """

    def __init__(
        self, http_status: int, code: int, msg: str, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(f"HTTP {http_status} code {code}: {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return envelope(self.code, self.msg)
