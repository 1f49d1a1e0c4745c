"""A stateful property test of the pay-once protocol over the real Lua scripts.

Hypothesis drives three jobs (a clone, then one production audio each) through the
real steps.py and watchdog.py functions on a real Redis; only the API is a model
(``ModelApi``) and the broker a list of messages (``Network``). Rules deliver any
message (so messages arrive in any order), duplicate or lose one, crash the worker
before or after the API took a create or in the middle of recording it, lose the
API's answer, answer 503, move the clock, and run watchdog passes, one of them with
a fencing token that went stale.

After every rule: no step was created twice at the API, and no step has messages of
two live chains (two senders acting for it). At the end the faults stop: every job
must reach a terminal state within the published recovery bound plus the time its
remaining steps take, every ``unknown`` is a create the API may hold, and every
completed step carries what the API answered.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from clonequeue.api.models import CloneRequest, RemoteTask
from clonequeue.config import Settings, load_settings
from clonequeue.dispatch.bounds import recovery_bound_s
from clonequeue.dispatch.queues import QueueNames
from clonequeue.errors import ApiUnavailableError, NotSentError, OutcomeUnknownError
from clonequeue.jobspec import JobSpec
from clonequeue.store.batches import BatchStore
from clonequeue.store.connect import job_store
from clonequeue.store.jobs import Dispatch, JobStore
from clonequeue.store.records import doc_audios, new_job_doc
from clonequeue.workers import steps, watchdog
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.gate import FleetGate
from clonequeue.workers.limiter import ApiRateLimiter

pytestmark = pytest.mark.timeout(900)
# CI: 60 fault sequences of up to 40 rules; `make chaos` (CHAOS_FULL=1) runs 1,000.
EXAMPLES = 1000 if os.environ.get("CHAOS_FULL") == "1" else 100

START = 1_900_000_000.0
JOB_IDS = ("j0", "j1", "j2")
POLLS_TO_FINISH = 2  # the model API's tasks are done at their second poll
TERMINAL = {"completed", "failed", "unknown", "cancelled"}

# How a call to the model API goes (chosen by the rule that delivers the message).
OK, UNAVAILABLE, NOT_SENT, ANSWER_LOST, CRASH_BEFORE, CRASH_AFTER = (
    "ok", "503", "not sent", "answer lost", "crash before send", "crash after send",
)  # fmt: skip
CALL_FAULTS = (OK, UNAVAILABLE, NOT_SENT, ANSWER_LOST, CRASH_BEFORE, CRASH_AFTER)


class WorkerCrash(BaseException):
    """The worker process died here (a BaseException: no ``except Exception`` sees it)."""


@dataclass
class Message:
    kind: str  # "create" | "poll"
    step: Dispatch
    ready_at: float
    chain: int  # which sender's line of work it continues
    copy: bool = False  # a duplicate the broker made, or one a re-drive overtook


@dataclass
class ModelApi:
    """The API: a ledger of creates, tasks finished after POLLS_TO_FINISH polls."""

    creates: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault: str = OK
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def _create(self, request: Any, kind: str) -> RemoteTask:
        fault, self.fault = self.fault, OK
        if fault == CRASH_BEFORE:
            raise WorkerCrash
        if fault == NOT_SENT:
            raise NotSentError("connection refused (model)")
        if fault == UNAVAILABLE:
            raise ApiUnavailableError("503 (model)", http_status=503)
        step = _step_of(request)
        self.creates[step] += 1
        remote_id = f"{kind}_{next(self.ids)}"
        self.tasks[remote_id] = {"step": step, "polls": 0}
        if fault == ANSWER_LOST:
            raise OutcomeUnknownError("read timed out (model)")
        if fault == CRASH_AFTER:
            raise WorkerCrash
        return RemoteTask(id=remote_id, status="queued")

    def create_clone(self, request: Any) -> RemoteTask:
        return self._create(request, "clone")

    def create_audio(self, request: Any) -> RemoteTask:
        return self._create(request, "audio")

    def get_task(self, remote_id: str) -> RemoteTask:
        fault, self.fault = self.fault, OK
        if fault in (CRASH_BEFORE, CRASH_AFTER):
            raise WorkerCrash
        if fault != OK:
            raise ApiUnavailableError("503 (model)", http_status=503)
        task = self.tasks[remote_id]
        task["polls"] += 1
        if task["polls"] < POLLS_TO_FINISH:
            return RemoteTask(id=remote_id, status="running")
        done = {"modelId": f"model-{remote_id}"} if remote_id.startswith("clone") else {}
        return RemoteTask(id=remote_id, status="completed", audioUrl=f"u/{remote_id}", **done)


def _step_of(request: Any) -> tuple[str, str]:
    """Which step a create is for: each job's file and text name it (see _spec)."""
    if isinstance(request, CloneRequest):
        return str(request.fileUrl).rsplit("/", 1)[1].removesuffix(".mp3"), "c"
    return str(request.contentText).removeprefix("Hello from "), "0"


@dataclass
class Network:
    """The broker: every published message, until delivered or lost."""

    clock: Any
    grace_s: float
    messages: list[Message] = field(default_factory=list)
    chains: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    current: dict[tuple[str, str], int] = field(default_factory=dict)  # chain being delivered
    crash_on_publish: bool = False
    queues: QueueNames = field(default_factory=lambda: QueueNames.for_namespace("m"))

    def _add(self, kind: str, step: Dispatch, countdown: float | None) -> None:
        if self.crash_on_publish:
            self.crash_on_publish = False
            raise WorkerCrash  # the state change is stored, its message never sent
        key = (step.job_id, step.item)
        chain = self.current.get(key)
        if chain is None:  # a sender of its own: the watchdog's re-drive, an unpark
            chain = next(self.chains)
            self._overtake(step)
        self.messages.append(Message(kind, step, self.clock() + (countdown or 0.0), chain))

    def _overtake(self, step: Dispatch) -> None:
        """A re-drive presumes a message lost that is overdue past the watchdog's grace
        (no consumer took it: all workers down, say). If it turns up after all, it is a
        duplicate that the step's claim must fence, like one the broker made; a message
        not yet that overdue stays live, and a second chain beside it is a bug."""
        for m in self.messages:
            same = (m.step.job_id, m.step.item, m.step.gen) == (step.job_id, step.item, step.gen)
            if same and m.ready_at + self.grace_s <= self.clock():
                m.copy = True

    def create(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._add("create", step, countdown)

    def poll(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._add("poll", step, countdown)

    def queue_depths(self) -> dict[str, int]:
        return {}  # never a backlog: every overdue step is re-driven


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _spec(job_id: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "custom_id": job_id,
            "clone": {"fileUrl": f"https://e.com/{job_id}.mp3"},
            "audios": [{"contentText": f"Hello from {job_id}"}],
        }
    )


class StepMachine(RuleBasedStateMachine):
    """Faults in any order against the real scripts; the invariants never break."""

    redis_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.settings: Settings = load_settings(
            env_file=None,
            redis_url=self.redis_url,
            namespace=f"sm{uuid.uuid4().hex[:8]}",
            api_token="t",
            api_rate_limit="100000/second",
            max_in_flight=2,  # three jobs: one waits parked at times
        )
        self.jobs: JobStore = job_store(self.settings)
        self.clock = Clock()
        self.api = ModelApi()
        self.net = Network(self.clock, self.settings.watchdog_grace_s)
        self.queues = QueueNames.for_namespace(self.settings.namespace)
        self.ctx = WorkerContext(
            settings=self.settings,
            jobs=self.jobs,
            client=self.api,  # type: ignore[arg-type]
            limiter=ApiRateLimiter(self.jobs.client, self.jobs.keys, self.settings.api_rate_limit),
            gate=FleetGate(self.jobs.client, self.jobs.keys, self.settings.max_in_flight),
            dispatcher=self.net,
            clock=self.clock,
            rng=random.Random(0),
        )
        self.crashed_submitting: set[tuple[str, str]] = set()  # may have sent: unknown is fair
        docs = [(j, json.dumps(new_job_doc(_spec(j), "b", START))) for j in JOB_IDS]
        BatchStore(self.jobs).create_jobs("b", docs, now=START)
        for job_id in JOB_IDS:  # the producer's first messages
            self.net.create(Dispatch(job_id, "c", 0))

    # --- the system's parts -------------------------------------------------------

    def docs(self) -> dict[str, dict[str, Any]]:
        raw = self.jobs.client.mget([self.jobs.keys.job(j) for j in JOB_IDS])
        return {j: json.loads(r) for j, r in zip(JOB_IDS, raw, strict=True) if r}

    def steps_of(self, doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("c", doc["clone"])] + [(str(i), a) for i, a in enumerate(doc_audios(doc))]

    def _run(self, message: Message, fault: str, crash_on_publish: bool) -> None:
        key = (message.step.job_id, message.step.item)
        self.api.fault = fault
        self.net.crash_on_publish = crash_on_publish
        self.net.current = {key: message.chain}
        try:
            if message.kind == "create":
                steps.run_create(self.ctx, message.step)
            else:
                steps.run_poll(self.ctx, message.step)
        except WorkerCrash:
            if message.kind == "create" and fault in (CRASH_AFTER, CRASH_BEFORE):
                self.crashed_submitting.add(key)
        finally:
            self.api.fault = OK
            self.net.crash_on_publish = False
            self.net.current = {}

    # --- rules ----------------------------------------------------------------------

    @precondition(lambda self: self.net.messages)
    @rule(
        pick=st.integers(min_value=0),
        fault=st.sampled_from(CALL_FAULTS),
        crash_on_publish=st.booleans(),
        redelivered=st.booleans(),
    )
    def deliver(self, pick: int, fault: str, crash_on_publish: bool, redelivered: bool) -> None:
        """Any message (any order), its API call going as ``fault`` says.

        A worker that crashes leaves its message unacknowledged: ``redelivered`` keeps
        it in the broker (the visibility timeout brings it back), else it is lost.
        """
        message = self.net.messages.pop(pick % len(self.net.messages))
        self.clock.now = max(self.clock.now, message.ready_at)
        crashes = fault in (CRASH_BEFORE, CRASH_AFTER) or crash_on_publish
        if crashes and redelivered:
            self.net.messages.append(message)
        self._run(message, fault, crash_on_publish)

    @precondition(lambda self: self.net.messages)
    @rule(pick=st.integers(min_value=0))
    def duplicate(self, pick: int) -> None:
        """The broker delivers a message twice."""
        original = self.net.messages[pick % len(self.net.messages)]
        self.net.messages.append(
            Message(original.kind, original.step, original.ready_at, original.chain, copy=True)
        )

    @precondition(lambda self: self.net.messages)
    @rule(pick=st.integers(min_value=0))
    def lose(self, pick: int) -> None:
        """A message vanishes (Redis crashed, a task raised and was acknowledged)."""
        self.net.messages.pop(pick % len(self.net.messages))

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 90.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def watchdog_pass(self) -> None:
        watchdog.run_watchdog(self.ctx, self.queues, min_gap_s=0)

    @rule()
    def stale_watchdog_pass(self) -> None:
        """A pass that outlived its lock while the next one ran acts on nothing."""
        s = self.settings
        stale = self.jobs.lock_watchdog(now=self.clock(), lock_ms=60_000)
        if stale is None:
            return
        self.jobs.client.delete(f"{s.namespace}:lock:watchdog")  # its lock expired
        watchdog.run_watchdog(self.ctx, self.queues, min_gap_s=0)
        before = self.docs()
        sent = len(self.net.messages)
        self.clock.now += 1000.0  # everything is overdue now, for the stale pass too
        counts = watchdog._redrive_overdue(self.ctx, self.queues, stale)
        assert set(counts) <= {"fenced"}, counts
        assert self.docs() == before
        assert len(self.net.messages) == sent

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def nothing_created_twice(self) -> None:
        twice = {step: n for step, n in self.api.creates.items() if n > 1}
        assert not twice, f"created at the API more than once: {twice}"

    @invariant()
    def one_live_chain_per_step(self) -> None:
        docs = self.docs()
        live: dict[tuple[str, str], set[int]] = {}
        for m in self.net.messages:
            doc = docs[m.step.job_id]
            state = dict(self.steps_of(doc)).get(m.step.item)
            if m.copy or state is None or state["state"] in TERMINAL:
                continue
            if state["gen"] == m.step.gen:
                live.setdefault((m.step.job_id, m.step.item), set()).add(m.chain)
        doubled = {k: v for k, v in live.items() if len(v) > 1}
        assert not doubled, (
            f"steps with two live chains of messages: {doubled}; messages: "
            f"{[m for m in self.net.messages if (m.step.job_id, m.step.item) in doubled]}; "
            f"steps: {[docs[j]['clone'] if i == 'c' else docs[j] for j, i in doubled]}"
        )

    # --- once the faults stop --------------------------------------------------------

    def teardown(self) -> None:
        try:
            self.heal_and_check()
        finally:
            keys = list(self.jobs.client.scan_iter(f"{self.settings.namespace}:*", count=1000))
            if keys:
                self.jobs.client.delete(*keys)
            self.jobs.client.close()

    def heal_and_check(self) -> None:
        s = self.settings
        healed_at = self.clock.now
        # After the bound every open step has moved; then each step still to do takes
        # at most a create's lease plus its polls, clone then audio.
        per_step = s.poll_interval_max_s * (POLLS_TO_FINISH + 1) + s.retry_max_s
        limit = healed_at + recovery_bound_s(s) + 2 * per_step
        next_watchdog = self.clock.now + s.watchdog_interval_s
        while not self.all_terminal():
            assert self.clock.now <= limit, (
                f"not terminal {self.clock.now - healed_at:.0f} s after the faults stopped "
                f"(bound {limit - healed_at:.0f} s): {self.open_steps()}"
            )
            ready = [m for m in self.net.messages if m.ready_at <= self.clock.now]
            if ready:
                message = min(ready, key=lambda m: m.ready_at)
                self.net.messages.remove(message)
                self._run(message, OK, False)
                continue
            soonest = min([m.ready_at for m in self.net.messages] + [next_watchdog])
            self.clock.now = max(self.clock.now, soonest)
            if self.clock.now >= next_watchdog:
                watchdog.run_watchdog(self.ctx, self.queues, min_gap_s=0)
                next_watchdog = self.clock.now + s.watchdog_interval_s
        self.check_outcomes()

    def all_terminal(self) -> bool:
        return all(d["state"] in TERMINAL for d in self.docs().values())

    def open_steps(self) -> list[str]:
        return [
            f"{j}/{item}:{st['state']}@{st['gen']}"
            for j, d in self.docs().items()
            for item, st in self.steps_of(d)
            if st["state"] not in TERMINAL
        ]

    def check_outcomes(self) -> None:
        by_step = {t["step"]: rid for rid, t in self.api.tasks.items()}
        for job_id, doc in self.docs().items():
            for item, step in self.steps_of(doc):
                key = (job_id, item)
                if step["state"] == "unknown":
                    kind = step["error"]["kind"]
                    assert kind in ("no_answer", "lost_worker"), step
                    if kind == "no_answer":
                        assert self.api.creates[key] == 1, f"{key} unknown, never sent"
                    else:
                        assert key in self.crashed_submitting or self.api.creates[key], (
                            f"{key} lost_worker, but no worker died while sending it"
                        )
                if step["state"] == "completed":
                    assert step["remote_id"] == by_step[key], (key, step)
                    assert self.api.tasks[step["remote_id"]]["polls"] >= POLLS_TO_FINISH
                    if item == "c":
                        assert step["model_id"] == f"model-{step['remote_id']}"
                if step["state"] == "failed":
                    assert step["error"]["kind"] not in ("no_answer", "lost_worker"), step


@pytest.fixture
def step_machine(redis_url: str) -> type[StepMachine]:
    StepMachine.redis_url = redis_url
    return StepMachine


def test_every_fault_sequence_keeps_pay_once_and_ends_every_job(
    step_machine: type[StepMachine], redis_client: redis.Redis
) -> None:
    run_state_machine_as_test(
        step_machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
