"""The tornado Application: the API's three routes, the admin routes, and a JSON 404."""

from __future__ import annotations

from typing import Any

import tornado.web

from clonequeue.constants import AUDIO_PATH, CLONE_PATH, TASK_PATH_PREFIX
from clonequeue.simulator import admin
from clonequeue.simulator.engine import Engine
from clonequeue.simulator.files import FileHandler
from clonequeue.simulator.handlers import CreateHandler, NotFoundHandler, TaskHandler
from clonequeue.simulator.tasks import Kind


def _no_access_log(handler: tornado.web.RequestHandler) -> None:
    """Thousands of requests a second: an access log line each would cost more than the work."""


def make_app(
    engine: Engine, *, on_config_change: admin.ConfigListener | None = None
) -> tornado.web.Application:
    """Routes to handlers sharing one engine; ``on_config_change`` runs after admin changes."""
    api: dict[str, Any] = {"engine": engine}
    adm: dict[str, Any] = {"engine": engine, "on_config_change": on_config_change}
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (f"{TASK_PATH_PREFIX}([^/]+)", TaskHandler, api),  # first: polls are the hot path
        (CLONE_PATH, CreateHandler, {**api, "kind": Kind.CLONE}),
        (AUDIO_PATH, CreateHandler, {**api, "kind": Kind.AUDIO}),
        (r"/_sim/health", admin.HealthHandler, adm),
        (r"/_sim/config", admin.ConfigHandler, adm),
        (r"/_sim/reset", admin.ResetHandler, adm),
        (r"/_sim/clock/advance", admin.ClockHandler, adm),
        (r"/_sim/balance", admin.BalanceHandler, adm),
        (r"/_sim/ledger", admin.LedgerHandler, adm),
        (r"/_sim/ledger/summary", admin.SummaryHandler, adm),
        (r"/_sim/tasks/([^/]+)", admin.TaskRecordHandler, adm),
        (r"/_sim/files/([^/.]+)\.(wav|srt)", FileHandler, api),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=api,
        log_function=_no_access_log,
        compress_response=False,
    )
