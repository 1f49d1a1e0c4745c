"""Start and stop a simulator: in a background thread (tests) or in the foreground (CLI).

One process, one asyncio/tornado loop, one engine. The server owns the listening
socket because ``down="refuse"`` closes it (and every open connection) for
``down_for_s`` and then binds the same port again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import tornado.httpserver
import tornado.netutil

from clonequeue.simulator.app import make_app
from clonequeue.simulator.config import SimConfig
from clonequeue.simulator.engine import Engine

log = logging.getLogger(__name__)

_CLOSE_CONNECTIONS_TIMEOUT_S = 2.0
_REBIND_ATTEMPTS = 50
_REBIND_INTERVAL_S = 0.1


class SimulatorServer:
    """The HTTP side of one engine, on the running asyncio loop."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.app = make_app(engine, on_config_change=self._config_changed)
        self._http: tornado.httpserver.HTTPServer | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def refusing(self) -> bool:
        return self._http is None

    async def start(self) -> None:
        """Bind (port 0 picks a free one, kept across outages) and start serving."""
        self._listen()
        self._config_changed()  # a config that starts in a 'refuse' outage

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        await self._close_listener()
        if self._closing:
            await asyncio.wait(self._closing, timeout=_CLOSE_CONNECTIONS_TIMEOUT_S)

    def _listen(self) -> None:
        sockets = tornado.netutil.bind_sockets(self.port, address=self.host)
        self.port = sockets[0].getsockname()[1]
        if self.engine.files_url is None and self.host not in ("0.0.0.0", "::", ""):
            self.engine.files_url = self.url  # audioUrl points at this simulator's own files
        server = tornado.httpserver.HTTPServer(self.app, xheaders=False)
        server.add_sockets(sockets)
        self._http = server

    async def _close_listener(self) -> None:
        """Stop accepting, then drop every open connection: a crashed server keeps none."""
        server, self._http = self._http, None
        if server is None:
            return
        server.stop()
        with suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), _CLOSE_CONNECTIONS_TIMEOUT_S)

    def _config_changed(self) -> None:
        config = self.engine.config
        if config.down == "refuse" and self._http is not None and config.down_for_s is not None:
            task = asyncio.ensure_future(self._refuse(config.down_for_s))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _refuse(self, down_for_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._reopen = loop.call_later(down_for_s, self._come_back, _REBIND_ATTEMPTS)
        await self._close_listener()

    def _come_back(self, attempts_left: int) -> None:
        self._reopen = None
        try:
            self._listen()
        except OSError:
            if attempts_left <= 1:
                log.error(
                    "simulator: cannot bind %s:%s again after an outage", self.host, self.port
                )
                return
            loop = asyncio.get_running_loop()
            self._reopen = loop.call_later(_REBIND_INTERVAL_S, self._come_back, attempts_left - 1)
            return
        self.engine.end_outage()


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """Where a simulator started by :func:`serve_in_thread` listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/_sim"


class _LoopThread:
    """A daemon thread running one simulator's loop until :meth:`stop`."""

    def __init__(self, config: SimConfig | None, host: str, port: int) -> None:
        self._server = SimulatorServer(Engine(config), host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="clonequeue-simulator", daemon=True)

    def start(self) -> RunningSimulator:
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            self._thread.join()
            where = f"{self._server.host}:{self._server.port}"
            raise RuntimeError(f"the simulator could not start on {where}") from self.error
        return RunningSimulator(self._server.host, self._server.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - re-raised by start() or serve_in_thread
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        await self._server.start()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await self._server.stop()


@contextmanager
def serve_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSimulator]:
    """Run a simulator on its own loop in a daemon thread for the ``with`` block.

    Talk to it over HTTP only: the engine belongs to the loop thread.
    """
    runner = _LoopThread(config, host, port)
    running = runner.start()
    try:
        yield running
    finally:
        runner.stop()
        if runner.error is not None:
            raise RuntimeError("the simulator thread failed") from runner.error


def run_simulator(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until SIGTERM or SIGINT, then stop cleanly and return.

    ``on_ready(url)`` runs once the port is bound, e.g. to print the line scripts wait for.
    """

    async def main() -> None:
        server = SimulatorServer(Engine(config), host, port)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if on_ready is not None:
            on_ready(server.url)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await server.stop()

    asyncio.run(main())
