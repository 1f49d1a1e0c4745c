"""The simulator's knobs: one validated model, set at start and patched at run time.

Every knob can be given as a CLI flag (``clonequeue simulator --failure-rate 0.1``)
and changed later with ``PATCH /_sim/config``; a patch is merged into the current
values and validated as a whole, so a bad knob never leaves a half-applied config.
``tokens`` and ``initial_balance`` describe the accounts and are start-only.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clonequeue.api.models import describe_validation_error

DownMode = Literal["5xx", "refuse"]
BalanceError = Literal["http402", "code200"]

DEFAULT_TOKEN = "sim-token"
# Accounts, not behaviour: changing them at run time would make balances ambiguous.
START_ONLY_FIELDS = frozenset({"tokens", "initial_balance"})


class SimConfig(BaseModel):
    """What the simulated API does: durations, prices and injected faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- accounts (start-only) -------------------------------------------------------
    tokens: tuple[str, ...] = Field(
        (DEFAULT_TOKEN,),
        min_length=1,
        exclude=True,
        repr=False,
        description="Accepted bearer tokens; never shown in answers.",
    )
    initial_balance: float = Field(1000.0, ge=0.0, description="Starting balance of each token.")

    # --- task lifecycle ----------------------------------------------------------------
    clone_queue_s: float = Field(1.0, ge=0.0, description="Time a clone task stays queued.")
    clone_processing_s: float = Field(4.0, ge=0.0, description="Time a clone task processes.")
    audio_queue_s: float = Field(1.0, ge=0.0, description="Time an audio task stays queued.")
    audio_processing_s: float = Field(4.0, ge=0.0, description="Time an audio task processes.")
    jitter_ratio: float = Field(
        0.0, ge=0.0, lt=1.0, description="Durations vary by up to ± this fraction."
    )
    failure_rate: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of tasks that fail.")
    failure_msg: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="The msg of every failed task (None: one of the built-in reasons); "
        "a test's way to hand the client any text, e.g. a spreadsheet formula.",
    )
    seed: int = Field(
        0,
        description="Seeds every random choice: same requests, same answers (task ids "
        "differ between simulator processes: never reused).",
    )

    # --- billing --------------------------------------------------------------------------
    price_per_10k_chars: float = Field(1.0, ge=0.0, description="Charge per 10,000 billed chars.")
    voice_fee: float = Field(0.01, ge=0.0, description="Extra charge per production audio.")
    balance_error: BalanceError = Field(
        "http402", description="'http402', or 'code200' (HTTP 200 with code 40200)."
    )

    # --- faults -------------------------------------------------------------------------
    error_5xx_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of API requests answered 500/502/503 first."
    )
    rate_limit_per_s: int | None = Field(
        None, ge=1, description="At most this many API requests in any 1 s window; else 429."
    )
    rate_limit_schedule: tuple[tuple[float, int], ...] = Field(
        (),
        description="[[after_s, limit], ...]: the limit becomes `limit` requests/s once "
        "`after_s` real seconds have passed since this knob was set (a provider's limit "
        "changing under load); before the first entry, rate_limit_per_s holds.",
    )
    latency_s: float = Field(0.0, ge=0.0, description="Delay added to every API answer.")
    latency_jitter_s: float = Field(
        0.0,
        ge=0.0,
        description="A further random delay in [0, this] before each API request is admitted "
        "(arrival jitter: requests sent evenly reach the rate window unevenly).",
    )
    slow_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of API answers delayed by slow_s (after effect)."
    )
    slow_s: float = Field(35.0, ge=0.0, description="Extra delay of a slow answer.")
    trickle_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of API answers (after effect) whose body comes one byte every "
        "trickle_s: each read gets a byte well within any read timeout, the answer never ends.",
    )
    trickle_s: float = Field(0.2, gt=0.0, description="The pause between a trickling body's bytes.")
    pad_bytes: int = Field(
        0,
        ge=0,
        le=50_000_000,
        description="Every successful API answer's data gains a field of this many bytes "
        "(unknown extra fields must be tolerated; an answer can be any size).",
    )
    lost_response_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of creates that take effect, then close the connection unanswered.",
    )
    idle_close_s: float | None = Field(
        None,
        gt=0.0,
        description="A keep-alive connection idle this long (real time) is closed by the server, "
        "but the client sees the close only when it sends again: that request is dropped unread "
        "(the keep-alive race, as through a NAT or load balancer). None: keep connections open.",
    )
    down: DownMode | None = Field(
        None, description="'5xx' (every API request 503) or 'refuse' (connections refused)."
    )
    down_for_s: float | None = Field(
        None, gt=0.0, description="Come back up by itself after this long (required for refuse)."
    )

    # --- result files (GET /_sim/files/<task id>.wav|.srt, the audioUrl it gives) ---------
    file_bytes: int = Field(
        48_044, ge=44, description="Size of every audio file served (a WAV tone; 44 B header)."
    )
    file_bytes_per_s: float | None = Field(
        None, gt=0.0, description="Serve file bodies at most this fast (a slow CDN)."
    )
    file_missing_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of file downloads answered 404."
    )
    file_truncate_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of file downloads cut off halfway (full Content-Length and digest).",
    )
    file_corrupt_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of file downloads with one byte changed (the length is right, "
        "the digest is not).",
    )

    @model_validator(mode="after")
    def _schedule_is_ordered(self) -> Self:
        times = [after for after, _ in self.rate_limit_schedule]
        if times != sorted(times) or any(t < 0 for t in times):
            raise ValueError("rate_limit_schedule: after_s must be >= 0 and ascending")
        if any(limit < 1 for _, limit in self.rate_limit_schedule):
            raise ValueError("rate_limit_schedule: every limit must be >= 1")
        return self

    @model_validator(mode="after")
    def _refuse_needs_an_end(self) -> Self:
        if self.down == "refuse" and self.down_for_s is None:
            raise ValueError(
                "down='refuse' needs down_for_s: the admin API is unreachable while refusing, "
                "so the simulator must come back up by itself"
            )
        return self

    def public(self) -> dict[str, Any]:
        """The knobs as JSON (tokens excluded), for ``GET /_sim/config``."""
        return self.model_dump(mode="json")


class ConfigPatchError(ValueError):
    """A ``PATCH /_sim/config`` body that cannot be applied; the message says why."""


def patched(config: SimConfig, patch: object) -> SimConfig:
    """``config`` with the knobs in ``patch`` changed, or :class:`ConfigPatchError`."""
    if not isinstance(patch, dict):
        raise ConfigPatchError('the body must be a JSON object of knobs, e.g. {"latency_s": 1}')
    start_only = sorted(START_ONLY_FIELDS & patch.keys())
    if start_only:
        raise ConfigPatchError(
            f"{', '.join(start_only)} can only be set at start; use POST /_sim/balance for balances"
        )
    merged = {**config.model_dump(), **patch, "tokens": config.tokens}
    try:
        return SimConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigPatchError("; ".join(describe_validation_error(exc))) from exc
