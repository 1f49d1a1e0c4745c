"""The ``/_sim/`` admin API: knobs, clock, balances, ledger. No auth; bind to localhost.

Plain JSON (not the provider's envelope), errors as ``{"error": "..."}`` with 400
or 404. Tokens are never echoed: balances are keyed by ``sha256(token)[:12]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard

from clonequeue.simulator import codes
from clonequeue.simulator.config import ConfigPatchError
from clonequeue.simulator.engine import Engine
from clonequeue.simulator.handlers import JSON_CONTENT_TYPE, JsonHandler, dump_json, reason_of

ConfigListener = Callable[[], None]


class AdminHandler(JsonHandler):
    """Admin calls share the engine and tell the server when knobs changed."""

    def initialize(self, engine: Engine, on_config_change: ConfigListener | None = None) -> None:
        self.engine = engine
        self.on_config_change = on_config_change

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        body = self.read_json()
        if not isinstance(body, dict):
            raise codes.Rejection(400, codes.BAD_REQUEST, "the body must be a JSON object")
        return body

    def bad_request(self, message: str, status: int = 400) -> None:
        self.send_json(status, {"error": message})

    async def answer_then_notify(self, payload: object) -> None:
        """Send the answer first: a ``refuse`` outage closes this very connection."""
        await self.send_json(200, payload)
        if self.on_config_change is not None:
            self.on_config_change()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        self.finish(dump_json({"error": reason_of(status_code)}))


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class HealthHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(200, {"ok": True})


class ConfigHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(200, self.engine.config.public())

    async def patch(self) -> None:
        try:
            config = self.engine.patch_config(self.body())
        except (ConfigPatchError, codes.Rejection) as exc:
            self.bad_request(exc.msg if isinstance(exc, codes.Rejection) else str(exc))
            return
        await self.answer_then_notify(config.public())


class ResetHandler(AdminHandler):
    async def post(self) -> None:
        self.engine.reset()
        await self.answer_then_notify({"ok": True})


class ClockHandler(AdminHandler):
    def post(self) -> None:
        try:
            seconds = self.body().get("seconds")
        except codes.Rejection as exc:
            self.bad_request(exc.msg)
            return
        if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
            self.bad_request('give {"seconds": N} with N a number >= 0')
            return
        self.engine.clock.advance(seconds)
        self.send_json(
            200, {"offset_s": self.engine.clock.offset_s, "now": self.engine.clock.now()}
        )


class BalanceHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(200, self.engine.balances())

    def post(self) -> None:
        try:
            body = self.body()
        except codes.Rejection as exc:
            self.bad_request(exc.msg)
            return
        token, balance = body.get("token"), body.get("balance")
        if not isinstance(token, str) or not token:
            self.bad_request('give {"token": "...", "balance": X}: token must be a string')
            return
        if not _is_number(balance) or not math.isfinite(balance) or balance < 0:
            self.bad_request("balance must be a number >= 0")
            return
        account = self.engine.accounts.set_balance(token, float(balance))
        self.send_json(200, {"account": account, "balance": self.engine.accounts.balances[account]})


class LedgerHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(200, self.engine.ledger_json())


class SummaryHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(200, self.engine.summary())


class TaskRecordHandler(AdminHandler):
    def get(self, task_id: str) -> None:
        try:
            record = self.engine.task_record(task_id)
        except codes.Rejection as exc:
            self.bad_request(exc.msg, 404)
            return
        self.send_json(200, record)
