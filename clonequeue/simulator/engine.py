"""The simulated SoundClone service as pure logic: no HTTP, no sleeping, no threads.

Handlers translate HTTP to these calls and back; everything that decides an
answer lives here, so it is unit-tested with a fake clock. Every random choice
comes from a stream seeded by ``SimConfig.seed``: the same requests in the same
order get the same outcomes and faults, and within one simulator (across ``reset``)
the same ids. Ids also draw on a value of their own per simulator, so a restarted one
never hands out an id an earlier one did: a provider never reuses a task id, and a
worker still polling the earlier task must hear "not found", not another job's answer.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from clonequeue.api.billing import billed_chars, preview_chars
from clonequeue.api.models import AudioRequest, CloneRequest, TaskStatus, describe_validation_error
from clonequeue.constants import BILLING_UNIT_CHARS, MODEL_ID_TTL_S
from clonequeue.simulator import codes
from clonequeue.simulator.accounts import Accounts
from clonequeue.simulator.clock import SimClock
from clonequeue.simulator.config import SimConfig, patched
from clonequeue.simulator.faults import Dice, Outage, RateWindow
from clonequeue.simulator.ledger import Answer, CreateEntry, Ledger
from clonequeue.simulator.tasks import AUDIO_FAILURES, CLONE_FAILURES, FAIL_TRIGGER, Kind, Task

_5XX_STATUSES = (500, 502, 503)


@dataclass(frozen=True, slots=True)
class Created:
    """A create that took effect, and how its answer is to be delivered."""

    task: Task
    answer: Answer
    data: dict[str, Any]


def body_sha256(body: dict[str, Any]) -> str:
    """Hash of the canonical JSON of a body: same fields and values, same hash."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Engine:
    """Tasks, accounts, faults and the ledger of one simulator; reset restores the start."""

    def __init__(self, config: SimConfig | None = None, *, clock: SimClock | None = None) -> None:
        self.start_config = config or SimConfig()
        self.clock = clock or SimClock()
        self.files_url: str | None = None  # set by the server: audioUrl points at itself
        self._instance = secrets.token_hex(8)  # this simulator's own share of every id
        self._begin(self.start_config)

    def _begin(self, config: SimConfig) -> None:
        self._config = config
        self.tasks: dict[str, Task] = {}
        self._models: dict[str, Task] = {}  # modelId -> the clone task that yields it
        self._refunds_due: list[tuple[float, int, str]] = []  # (finish time, seq, task id)
        self.ledger = Ledger()
        self.accounts = Accounts(config.tokens, config.initial_balance)
        self._rate = RateWindow()
        self._schedule_since = self.clock.real()
        self._outage = Outage()
        if config.down is not None:
            self._outage.start(self.clock.real())
        self._seed(config.seed)

    def _seed(self, seed: int) -> None:
        self._ids = Dice(seed, f"ids:{self._instance}")
        self._outcomes = Dice(seed, "outcomes")
        self._faults = Dice(seed, "faults")
        self._arrivals = Dice(seed, "arrivals")  # its own stream: jitter moves no other fault

    # --- configuration and admin -----------------------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._config

    def patch_config(self, patch: object) -> SimConfig:
        """Apply a partial update (raises ConfigPatchError); a new ``down`` restarts its timer.

        A new ``down`` without ``down_for_s`` lasts until it is ended: the last outage's
        length is not carried over (it ended the next outage unasked).
        """
        if isinstance(patch, dict) and patch.get("down") is not None and "down_for_s" not in patch:
            patch = {**patch, "down_for_s": None}
        new = patched(self._config, patch)
        if new.seed != self._config.seed:
            self._seed(new.seed)
        if isinstance(patch, dict) and patch.get("down") is not None:
            self._outage.start(self.clock.real())
        if isinstance(patch, dict) and "rate_limit_schedule" in patch:
            self._schedule_since = self.clock.real()
        # A changed limit keeps the window's history: requests admitted in the last
        # second still count against a lowered limit, as at a provider.
        self._config = new
        return new

    def reset(self) -> None:
        """Back to the start: no tasks, empty ledger, start balances, knobs and clock."""
        self.clock.reset()
        self._begin(self.start_config)

    def rate_limit_now(self) -> int | None:
        """The limit in force: ``rate_limit_schedule``'s latest entry due, else the knob."""
        limit = self._config.rate_limit_per_s
        elapsed = self.clock.real() - self._schedule_since
        for after_s, scheduled in self._config.rate_limit_schedule:
            if after_s > elapsed:
                break
            limit = scheduled
        return limit

    def arrival_delay(self) -> float:
        """Seconds before a request reaches admission: ``latency_s`` plus its jitter."""
        config = self._config
        jitter = config.latency_jitter_s
        return config.latency_s + (self._arrivals.uniform(0.0, jitter) if jitter > 0 else 0.0)

    def down_mode(self) -> str | None:
        """The outage in force now; one whose ``down_for_s`` has passed is ended here."""
        if self._config.down is not None and self._outage.over(
            self._config.down_for_s, self.clock.real()
        ):
            self.end_outage()
        return self._config.down

    def end_outage(self) -> None:
        self._config = self._config.model_copy(update={"down": None, "down_for_s": None})
        self._outage.since = None

    def balances(self) -> dict[str, float]:
        self.settle()
        return dict(self.accounts.balances)

    def ledger_json(self) -> dict[str, Any]:
        self.settle()
        return self.ledger.to_json()

    def summary(self) -> dict[str, Any]:
        self.settle()
        return self.ledger.summary()

    def task_record(self, task_id: str) -> dict[str, Any]:
        task = self.tasks.get(task_id)
        if task is None:
            raise codes.Rejection(404, codes.NOT_FOUND, f"no task {task_id!r}")
        return task.record(self.clock.now(), files_url=self.files_url)

    # --- admission: what happens before a request has any effect ---------------------------------

    def admit(self) -> None:
        """Raise the Rejection of an outage, the rate limit or a random 5xx; else return."""
        if self.down_mode() == "5xx":
            raise codes.Rejection(503, codes.SERVER_ERROR, "service unavailable (simulated outage)")
        wait_s = self._rate.admit(self.rate_limit_now(), self.clock.real())
        if wait_s is not None:
            raise codes.Rejection(
                429, codes.RATE_LIMITED, "too many requests", retry_after_s=wait_s
            )
        if self._faults.roll(self._config.error_5xx_rate):
            status = _5XX_STATUSES[int(self._faults.uniform(0, len(_5XX_STATUSES)))]
            raise codes.Rejection(status, codes.SERVER_ERROR, "internal error (simulated)")

    def authenticate(self, authorization: str | None) -> str:
        """The account (token fingerprint) of a request, or a 401 Rejection."""
        account = self.accounts.authenticate(authorization)
        if account is None:
            raise codes.Rejection(401, codes.UNAUTHORIZED, "unauthorized: invalid or missing token")
        return account

    def roll_slow(self) -> bool:
        """Whether this answer is held back by ``slow_s`` (decided after the effect)."""
        return self._faults.roll(self._config.slow_rate)

    def roll_trickle(self) -> bool:
        """Whether this answer's body trickles in (decided after the effect)."""
        return self._faults.roll(self._config.trickle_rate)

    def padded(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with ``pad_bytes`` of an extra field, when that knob is set."""
        size = self._config.pad_bytes
        return {**data, "padding": "x" * size} if size else data

    # --- the API ---------------------------------------------------------------------------------

    def poll(self, account: str, task_id: str) -> dict[str, Any]:
        """``data`` of ``GET /audios/{id}``; records the poll's simulated time."""
        task = self.tasks.get(task_id)
        if task is None or task.account != account:
            raise codes.Rejection(404, codes.NOT_FOUND, f"task not found: {task_id}")
        now = self.clock.now()
        self.ledger.record_poll(task_id, now)
        return task.public(now, files_url=self.files_url)

    def file_task(self, task_id: str) -> Task | None:
        """The completed task whose result file is asked for, if any."""
        task = self.tasks.get(task_id)
        if task is None or task.status(self.clock.now()) is not TaskStatus.COMPLETED:
            return None
        return task

    def roll_file_fault(self) -> str | None:
        """'missing', 'truncate', 'corrupt' or None for one file download."""
        if self._faults.roll(self._config.file_missing_rate):
            return "missing"
        if self._faults.roll(self._config.file_truncate_rate):
            return "truncate"
        if self._faults.roll(self._config.file_corrupt_rate):
            return "corrupt"
        return None

    def create(self, kind: Kind, account: str, body: object) -> Created:
        """Validate, check the model and the balance, then create, charge and record a task."""
        if not isinstance(body, dict):
            raise codes.Rejection(400, codes.BAD_REQUEST, "the body must be a JSON object")
        now = self.clock.now()
        clone: Task | None = None
        try:
            if kind is Kind.CLONE:
                clone_request = CloneRequest.model_validate(body)
                chars = preview_chars(clone_request.contentText)
                fee = 0.0
            else:
                audio_request = AudioRequest.model_validate(body)
                chars = billed_chars(audio_request.contentText)
                fee = self._config.voice_fee
                clone = self._usable_clone(account, audio_request.modelId, now)
        except ValidationError as exc:
            raise codes.Rejection(
                400, codes.BAD_REQUEST, "; ".join(describe_validation_error(exc))
            ) from exc
        charge = round(chars / BILLING_UNIT_CHARS * self._config.price_per_10k_chars + fee, 6)
        self.settle()
        if not self.accounts.can_pay(account, charge):
            status = 402 if self._config.balance_error == "http402" else 200
            raise codes.Rejection(status, codes.INSUFFICIENT_BALANCE, "insufficient balance")

        task = self._new_task(kind, account, body, chars, charge, now)
        self.tasks[task.id] = task
        self.accounts.charge(account, charge)
        if clone is not None:
            clone.activated = True
        elif task.model_id is not None:
            self._models[task.model_id] = task
        if task.error is not None:
            heapq.heappush(self._refunds_due, (task.finished_at, len(self.tasks), task.id))

        answer: Answer = "sent"
        if self._faults.roll(self._config.lost_response_rate):
            answer = "lost"
        elif self.roll_slow():
            answer = "slow"
        self.ledger.record_create(
            CreateEntry(task.id, kind.value, body, task.body_sha256, chars, charge, now, answer)
        )
        return Created(task, answer, task.public(now, full=False))

    def _usable_clone(self, account: str, model_id: str, now: float) -> Task:
        clone = self._models.get(model_id)
        if clone is None or clone.account != account or clone.status(now) != TaskStatus.COMPLETED:
            raise codes.Rejection(
                400, codes.UNKNOWN_MODEL, f"unknown modelId {model_id!r}: no completed clone has it"
            )
        if not clone.activated and now > clone.model_expires_at:
            days = MODEL_ID_TTL_S // 86400
            raise codes.Rejection(
                400,
                codes.MODEL_EXPIRED,
                f"modelId {model_id!r} expired: it was not used within {days} days of its clone "
                "completing; clone the voice again",
            )
        return clone

    def _new_task(
        self, kind: Kind, account: str, body: dict[str, Any], chars: int, charge: float, now: float
    ) -> Task:
        config = self._config
        reasons: tuple[str, ...]
        if kind is Kind.CLONE:
            queue_s, processing_s = config.clone_queue_s, config.clone_processing_s
            triggered = FAIL_TRIGGER in str(body.get("fileUrl", ""))
            reasons = CLONE_FAILURES
        else:
            queue_s, processing_s = config.audio_queue_s, config.audio_processing_s
            triggered = FAIL_TRIGGER in str(body.get("contentText", ""))
            reasons = AUDIO_FAILURES
        outcomes = self._outcomes
        error: str | None = None
        if triggered:
            error = reasons[0]
        elif outcomes.roll(config.failure_rate):
            error = outcomes.choice(reasons)
        if error is not None and config.failure_msg is not None:
            error = config.failure_msg
        if config.jitter_ratio > 0:
            queue_s *= 1 + outcomes.uniform(-config.jitter_ratio, config.jitter_ratio)
            processing_s *= 1 + outcomes.uniform(-config.jitter_ratio, config.jitter_ratio)
        task_id = "audio_" + uuid.UUID(int=int(self._ids.hex(128), 16), version=4).hex
        model_id = body.get("modelId") if kind is Kind.AUDIO else None
        if kind is Kind.CLONE and error is None:
            model_id = "model_" + self._ids.hex(96)
        return Task(
            id=task_id,
            kind=kind,
            account=account,
            body=body,
            body_sha256=body_sha256(body),
            chars=chars,
            charge=charge,
            created_at=now,
            processing_at=now + queue_s,
            finished_at=now + queue_s + processing_s,
            error=error,
            model_id=model_id,
            subtitles=body.get("subtitleEnable") is True,
            trace_id="trace_" + self._ids.hex(64),
        )

    def settle(self) -> None:
        """Refund every failed task whose failure time has come (cheap when none is due)."""
        due = self._refunds_due
        now = self.clock.now()
        while due and due[0][0] <= now:
            finished_at, _, task_id = heapq.heappop(due)
            task = self.tasks[task_id]
            task.refunded = True
            self.accounts.credit(task.account, task.charge)
            self.ledger.record_refund(task_id, task.charge, finished_at)
