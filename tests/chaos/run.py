"""One chaos run: a system, a batch, a fault with a known end, and the checker's verdict.

The verdict comes from the recorded history (our job documents) held up against the
simulator's ledger (:func:`clonequeue.local.audit.audit`): every job terminal, no
step created twice, results equal the API's, failures only the API's own, and
``unknown`` only where the API may hold the task. "Time to recover" (`recover s`) is
from the fault's end until every step then open had moved on, against the published
recovery bound (which promises exactly that); `done s`, to the last job terminal,
adds the work the batch still had to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from clonequeue.config import Settings
from clonequeue.local.audit import AuditReport, body_sha256, sent_body
from clonequeue.local.stack import SimulatorAdmin
from clonequeue.store.records import doc_audios
from tests.chaos.report import EXPECTED_FAILURE_KINDS, FULL, ChaosReport, chaos_settings
from tests.e2e.system import System, make_rows

JOBS = 1000 if FULL else 80
WAIT_S = float(os.environ.get("CHAOS_WAIT_S", 900.0 if FULL else 240.0))
SETTINGS = chaos_settings(WAIT_S)
UNKNOWN_KINDS = ("no_answer", "lost_worker")
TERMINAL_STEP_STATES = ("completed", "failed", "unknown", "cancelled", "skipped")


def recovery_bound_s(settings: Settings) -> float:
    """The README's bound: core's function once it lands, else the same sum here."""
    try:
        from clonequeue.dispatch.bounds import recovery_bound_s as published
    except ImportError:
        lease = settings.http_connect_timeout_s + settings.http_read_timeout_s + 2.0 + 5.0
        longest = max(settings.visibility_timeout_s / 5, settings.poll_interval_max_s, lease)
        lock = max(2 * settings.watchdog_interval_s, 10.0)
        reconnect = 30.0
        return longest + settings.watchdog_grace_s + settings.watchdog_interval_s + lock + reconnect
    return float(published(settings))


@dataclass
class Verdict:
    report: AuditReport
    counts: dict[str, int]
    unknown_not_at_api: list[str]  # unknown steps of which the ledger has no create
    bad_failures: list[str]
    bad_unknowns: list[str]
    recover_s: float | None
    bound_s: float
    backlog_s: float = 0.0  # the create queues' drain after the fault: on top of the bound
    row: dict[str, Any] = field(default_factory=dict)


class ChaosRun:
    """Drive one fault: ``submit``, do the fault, ``fault_ended()``, then ``finish()``."""

    def __init__(
        self,
        name: str,
        system: System,
        simulator: SimulatorAdmin,
        chaos_report: ChaosReport,
        *,
        jobs: int = JOBS,
        batch: str = "chaos",
        audios: int = 1,
    ) -> None:
        self.name, self.system, self.simulator = name, system, simulator
        self.chaos_report, self.jobs, self.batch = chaos_report, jobs, batch
        self.audios = audios
        self.started = time.monotonic()
        self.fault_end: float | None = None
        simulator.configure(failure_rate=0.05, seed=sum(map(ord, name)) % 1000)

    def rows(self) -> list[dict[str, Any]]:
        return make_rows(self.jobs, audios=self.audios, prefix=self.batch)

    def submit(self) -> None:
        self.system.submit(self.rows(), batch=self.batch)

    def progress(self) -> float:
        info = self.system.info(self.batch)
        return info.finished_jobs / self.jobs

    def wait_progress(self, fraction: float, timeout_s: float = 120.0) -> None:
        """Block until that share of the batch is terminal (the fault hits mid-batch)."""
        deadline = time.monotonic() + timeout_s
        while self.progress() < fraction:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {fraction:.0%} not finished in {timeout_s} s")
            time.sleep(0.1)

    @contextlib.contextmanager
    def calls_in_the_air(self, latency_s: float = 3.0) -> Iterator[None]:
        """Inside, the API answers every call ``latency_s`` late: the workers' threads hold
        their messages mid-call. A countdown waits in Redis, not in a worker, so a worker
        hit between calls holds nothing for the watchdog to bring back; a worker fault
        that must bite hits while calls are in the air."""
        self.simulator.configure(latency_s=latency_s)
        try:
            time.sleep(latency_s / 2)
            yield
        finally:
            self.simulator.configure(latency_s=0.0)

    def slow_tasks(self, processing_s: float) -> None:
        """Remote tasks that take this long, so the batch is still open when the fault ends."""
        self.simulator.configure(clone_processing_s=processing_s, audio_processing_s=processing_s)

    def fault_ended(self) -> None:
        self.fault_end = time.monotonic()
        self._moves = StepMoves(self.system, self.batch)

    def finish(self, timeout_s: float = WAIT_S, *, settle_s: float = 0.0) -> Verdict:
        """Wait for the batch, judge it, and add its row to the chaos table.

        ``settle_s``: then wait that long before judging, so that what a woken or healed
        worker still does with stale messages is in the ledger too.
        """
        info = self.system.wait(self.batch, timeout_s)
        seen_done = time.monotonic()
        moves = getattr(self, "_moves", None)
        stalled = None if moves is None else moves.stop()
        backlog = None if moves is None else moves.backlog_s
        if moves is not None:
            print(f"{self.name}: last steps to move: {moves.last_movers}")
        if settle_s:
            time.sleep(settle_s)
            info = self.system.info(self.batch)
        report = self.system.audit(self.batch)
        docs = self.system.docs(self.batch)
        ledger = self.simulator.ledger()
        created = {c["body_sha256"] for c in ledger["creates"]}
        not_at_api, bad_failures, bad_unknowns = [], [], []
        for doc in docs:
            model_id = doc["clone"].get("model_id")
            steps = [("clone", doc["clone"], sent_body(doc["clone"]["request"], None))]
            for i, audio in enumerate(doc_audios(doc)):
                steps.append((f"audio {i}", audio, sent_body(audio["request"], model_id)))
            for what, step, body in steps:
                where = f"{doc['id']} {what}"
                if step["state"] == "failed" and step["error"]["kind"] not in (
                    EXPECTED_FAILURE_KINDS
                ):
                    bad_failures.append(f"{where}: {step['error']}")
                if step["state"] == "unknown":
                    if step["error"]["kind"] not in UNKNOWN_KINDS:
                        bad_unknowns.append(f"{where}: {step['error']}")
                    if body_sha256(body) not in created:
                        not_at_api.append(f"{where}: {step['error']}")
        done = None if self.fault_end is None else max(0.0, seen_done - self.fault_end)
        recover = None if self.fault_end is None or stalled is None else stalled
        bound = recovery_bound_s(self.system.settings)
        summary = self.simulator.summary()
        row = {
            "fault": self.name,
            "jobs": report.jobs,
            "completed": info.counts.get("completed", 0),
            "failed": info.counts.get("failed", 0),
            "unknown": info.counts.get("unknown", 0),
            "creates": report.creates,
            "created twice": len(report.duplicates),
            "creates of unknowns": report.unknown_creates,
            "untracked": len(report.orphans),
            "disagree": len(report.mismatches),
            "429s": summary["http_429"],
            "5xx": summary["http_5xx"],
            "seconds": round(seen_done - self.started),
            "unknown, API has none": len(not_at_api),
            "recover s": "-" if recover is None else round(recover, 1),
            "done s": "-" if done is None else round(done, 1),
            "backlog s": "-" if backlog is None else round(backlog, 1),
            "bound s": round(bound),
        }
        self.chaos_report.append(row)
        return Verdict(
            report,
            info.counts,
            not_at_api,
            bad_failures,
            bad_unknowns,
            recover,
            bound,
            backlog or 0.0,
            row,
        )


def _step_marks(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each open step's position: it has moved when any of these changed (or its job ended).

    Steps with no message by design are the batch's work, not recovery, and not open
    here: an audio whose clone has not completed (the clone's own step stands for the
    job until then), and a parked step (the in-flight cap is full: it waits for a
    slot); a step that parks has moved. (Seen in full runs: the last "movers" 119-122 s
    after two beats and after a 90 s partition were audios created once their clones,
    of 48-72 s tasks, completed: never a lost message.)
    """
    if doc["state"] in TERMINAL_STEP_STATES:
        return {}
    steps = [("c", doc["clone"])]
    if doc["clone"]["state"] == "completed":
        steps += [(str(i), a) for i, a in enumerate(doc_audios(doc))]
    return {
        f"{doc['id']}/{item}": (step["state"], step.get("gen"), step.get("polls"))
        for item, step in steps
        if step["state"] not in TERMINAL_STEP_STATES and not step.get("parked")
    }


class StepMoves:
    """From the fault's end: how long until every step then open had moved (the bound's
    promise). A step moves when its state, generation or poll count changes; the time the
    rest of the batch then takes to finish is work, not recovery (the `done s` column).
    Sampled once a second from the job records.
    """

    def __init__(self, system: System, batch: str) -> None:
        self._system, self._batch = system, batch
        self._started = time.monotonic()
        self._open: dict[str, tuple[Any, ...]] = {}
        for doc in system.docs(batch):
            self._open.update(_step_marks(doc))
        self._last_move = 0.0
        self.last_movers: list[str] = []  # the slowest steps to move: what held recovery
        self.backlog_s: float | None = None  # until the create queues first ran empty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._open and not self._stop.wait(1.0):
            self._sample()

    def _sample(self) -> None:
        if self.backlog_s is None and not self._queued_creates():
            self.backlog_s = time.monotonic() - self._started
        now: dict[str, tuple[Any, ...]] = {}
        for doc in self._system.docs(self._batch):
            now.update(_step_marks(doc))
        moved = [key for key, mark in self._open.items() if now.get(key) != mark]
        if moved:
            self._last_move = time.monotonic() - self._started
            self.last_movers = [
                f"{key} {self._open[key]} -> {now.get(key, 'ended')} at {self._last_move:.0f} s"
                for key in moved[:3]
            ]
            for key in moved:
                del self._open[key]

    def _queued_creates(self) -> int:
        """Create messages waiting on the broker (a backlog, not lost ones)."""
        try:
            depths = self._system.services.dispatcher.queue_depths()
        except Exception:  # noqa: BLE001 - the broker is away: count it as a backlog
            return 1
        queues = self._system.services.dispatcher.queues
        return depths.get(queues.submit, 0) + depths.get(queues.produce, 0)

    def stop(self) -> float:
        """Seconds from the fault's end until the last open step moved."""
        self._stop.set()
        self._thread.join(30)
        if self._open:
            self._sample()  # the batch is done: every step has moved
        if self.backlog_s is None:
            self.backlog_s = time.monotonic() - self._started
        return self._last_move


_WATCHDOG_LINE = re.compile(r"watchdog: ([a-z_]+ \d+(?:, [a-z_]+ \d+)*)\s*$")


def watchdog_counts(system: System) -> Counter[str]:
    """What the watchdog passes did, summed over every worker's log ("poll 48, create 2",
    "fenced 1", ...): the proof that a fault took messages away and they came back."""
    counts: Counter[str] = Counter()
    for process in system.stack.workers:
        for line in process.log_path.read_text(errors="replace").splitlines():
            match = _WATCHDOG_LINE.search(line)
            if match is None:
                continue
            for part in match.group(1).split(", "):
                what, _, number = part.rpartition(" ")
                if number.isdigit():
                    counts[what] += int(number)
    return counts


def assert_redriven(system: System) -> Counter[str]:
    """The fault must have bitten: the watchdog re-drove steps whose messages it took."""
    counts = watchdog_counts(system)
    print(f"watchdog: {dict(counts)}")
    assert counts["poll"] + counts["create"] > 0, f"the watchdog re-drove nothing: {counts}"
    return counts


def check(
    verdict: Verdict, jobs: int, *, unknown_allowed: bool, unsent_unknown_allowed: bool = False
) -> None:
    """The checker's rules, the same for every fault.

    ``unknown_allowed``: the fault can leave a create in the air unanswered (a worker
    killed or frozen mid-create). ``unsent_unknown_allowed``: it can do so before the
    request left (the worker died between its claim and the send), so the API may
    hold nothing; without it, every unknown step must have its create in the ledger.
    """
    report = verdict.report
    assert report.ok, report.problems()
    assert report.jobs == jobs, f"{report.jobs} jobs recorded, {jobs} submitted"
    assert not verdict.bad_failures, f"failures the API did not cause: {verdict.bad_failures[:5]}"
    assert not verdict.bad_unknowns, f"unknown for no lost answer: {verdict.bad_unknowns[:5]}"
    if not unknown_allowed:
        assert verdict.counts.get("unknown", 0) == 0, (
            f"no create could be in the air unanswered, yet: {verdict.counts}; of them "
            f"never at the API: {verdict.unknown_not_at_api[:5]}"
        )
    assert not verdict.unknown_not_at_api or unsent_unknown_allowed, (
        f"unknown though the API holds no such task: {verdict.unknown_not_at_api[:5]}"
    )
    if verdict.recover_s is not None:
        # The README: a backlog postpones re-drives; the time it takes comes on top.
        assert verdict.recover_s <= verdict.bound_s + verdict.backlog_s, (
            f"recovered {verdict.recover_s:.0f} s after the fault, bound {verdict.bound_s:.0f} s "
            f"+ {verdict.backlog_s:.0f} s of backlog"
        )
