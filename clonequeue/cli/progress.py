"""Progress on stderr: a rich display on a terminal, a plain line every few seconds otherwise.

Two views: :class:`SubmitProgress` while a file is read and submitted, and
:class:`BatchWatch` while a batch runs (counts per state, bar, rate, ETA, pause).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from clonequeue.producers.submission import SubmitReport
from clonequeue.store.batches import BatchInfo
from clonequeue.wording import plural
from clonequeue.workers.rate_view import RateHistory, RateSnapshot

PLAIN_EVERY_S = 10.0
RATE_WINDOW_S = 60.0
STATE_ORDER = (
    "pending",
    "submitting",
    "cloning",
    "producing",
    "completed",
    "failed",
    "unknown",
    "cancelled",
)
STATE_STYLES = {"completed": "green", "failed": "red", "unknown": "yellow", "cancelled": "dim"}


def is_terminal() -> bool:
    return sys.stderr.isatty()


class _View:
    """Start/stop a rich live display when on a terminal; plain lines are rate-limited."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.tty = enabled and is_terminal()
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._last_line = time.monotonic()  # the first plain line comes after PLAIN_EVERY_S
        self._live: Any = None

    def __enter__(self) -> Any:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def print(self, line: str) -> None:
        """A line above the live display (or plainly), e.g. a rejected row."""
        if self.tty:
            self.console.print(Text(line))
        else:
            print(line, file=sys.stderr, flush=True)

    def plain(self, line: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last_line >= PLAIN_EVERY_S):
            self._last_line = now
            print(line, file=sys.stderr, flush=True)


class SubmitProgress(_View):
    """Rows read, new, rejected, rows/s; the bar follows the bytes read when the size is known."""

    def __init__(self, *, enabled: bool = True, label: str = "submit") -> None:
        super().__init__(enabled=enabled)
        self._label = label
        self._start = time.monotonic()
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("rows", total=None, detail="")
        self._live = self._progress if self.tty else None

    def update(self, report: SubmitReport, position: int | None, size: int | None) -> None:
        rate = report.rows / max(time.monotonic() - self._start, 1e-6)
        detail = (
            f"{plural(report.rows, 'row')}, {report.new:,} new, {report.rejected:,} rejected, "
            f"{rate:,.0f} rows/s"
        )
        if self.tty:
            self._progress.update(self._task, completed=position or 0, total=size, detail=detail)
            return
        share = f" ({position / size:.0%} of the input)" if position and size else ""
        self.plain(f"{self._label}: {detail}{share}")


class BatchWatch(_View):
    """A batch while it runs: counts per state, a bar, rate, ETA and the pause reason."""

    def __init__(self, *, enabled: bool = True) -> None:
        super().__init__(enabled=enabled)
        self._samples: deque[tuple[float, int]] = deque()
        self._rates = RateHistory()
        self._live = Live(console=self.console, refresh_per_second=2) if self.tty else None

    def update(
        self,
        info: BatchInfo,
        paused: dict[str, Any] | None = None,
        api_rate: RateSnapshot | None = None,
    ) -> None:
        now = time.monotonic()
        api = self.api_line(api_rate) if api_rate is not None else ""
        self._samples.append((now, info.finished_jobs))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        rate = self.rate()
        if self._live is not None:
            self._live.update(self._render(info, rate, paused, api))
            return
        line = f"{info.batch_id}: {summary(info)}"
        if rate and not info.is_finished:
            line += f"; {jobs_per_s(rate)}, ETA {_duration(info.open_jobs / rate)}"
        if paused:
            line += f"; {pause_text(paused)}"
        if api:
            line += f"; {api}"
        self.plain(line, force=info.is_finished)

    def api_line(self, snapshot: RateSnapshot) -> str:
        """``API 38.4/s of 39.2/s (learned 39.6/s), 0.5 429s/min, 97% useful``."""
        figures = self._rates.add(snapshot)
        if snapshot.rate is None:
            return "API rate: no call yet"
        ceiling = f"{snapshot.ceiling:,.1f}/s" if snapshot.ceiling else "auto"
        parts = [f"API pace {snapshot.rate:,.1f}/s of {ceiling}"]
        if snapshot.learned:
            parts[0] += f" (429s began at {snapshot.learned:,.1f}/s)"
        if figures.http_429_per_min is not None:
            parts.append(f"{figures.http_429_per_min:,.1f} x 429/min")
        if figures.failed_per_min:  # an outage is not slow tasks (QA pass)
            parts.append(
                f"{figures.failed_per_min:,.0f} calls/min failed (5xx, timeouts, no "
                "connection: the API may be down; the workers' logs say more)"
            )
        if figures.useful_share is not None:
            parts.append(f"{figures.useful_share:.0%} of calls useful")
        return ", ".join(parts)

    def rate(self) -> float:
        """Jobs finished per second over the last minute (0 until there are two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, done0), (t1, done1) = self._samples[0], self._samples[-1]
        return max(done1 - done0, 0) / (t1 - t0) if t1 - t0 >= 1.0 else 0.0

    def _render(
        self, info: BatchInfo, rate: float, paused: dict[str, Any] | None, api: str = ""
    ) -> Group:
        table = Table.grid(padding=(0, 2))
        for _ in STATE_ORDER:
            table.add_column(justify="right")
        table.add_row(*[Text(s, style=STATE_STYLES.get(s, "")) for s in STATE_ORDER])
        table.add_row(*[f"{info.counts.get(s, 0):,}" for s in STATE_ORDER])
        bar = Table.grid(padding=(0, 2))
        share = info.finished_jobs / info.total if info.total else 0.0
        bar.add_row(
            Text(info.batch_id, style="bold"),
            ProgressBar(total=max(info.total, 1), completed=info.finished_jobs, width=40),
            f"{info.finished_jobs:,}/{info.total:,} finished ({share:.0%})",
        )
        eta = _duration(info.open_jobs / rate) if rate else "—"
        lines: list[Any] = [bar, table, Text(f"{jobs_per_s(rate)}   ETA {eta}")]
        if api:
            lines.append(Text(api))
        if paused:
            lines.append(Text(pause_text(paused), style="bold yellow"))
        if info.is_finished:
            lines.append(Text("finished", style="bold"))
        return Group(*lines)


def jobs_per_s(rate: float) -> str:
    """``12.3 jobs/s``; a slow rate in jobs a minute (it read "0.0 jobs/s, ETA 1h59m")."""
    if 0 < rate < 0.1:
        return f"{rate * 60:,.1f} jobs/min"
    return f"{rate:,.1f} jobs/s"


def pause_text(paused: dict[str, Any]) -> str:
    """``creates paused: …``; a Retry-After every worker waits out holds polls too."""
    held = "API calls held" if paused.get("kind") == "retry_after" else "creates paused"
    return f"{held}: {paused.get('reason')}"


def summary(info: BatchInfo) -> str:
    """``120 jobs: completed 100, failed 20`` (states with jobs only, in pipeline order)."""
    parts = [f"{s} {info.counts[s]:,}" for s in STATE_ORDER if info.counts.get(s)]
    return f"{plural(info.total, 'job')}: " + (", ".join(parts) or "none")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
