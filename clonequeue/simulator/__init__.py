"""A local JimmyAI SoundClone API: faithful, seeded, observable, fast.

The demo, the tests, the chaos suite and the benchmarks run against it. It serves
the three documented endpoints (``POST …/soundCloning/clones``, ``POST
…/soundCloning/audios``, ``GET …/audios/{id}``) with the provider's envelope
``{"code", "msg", "data"}``, validates bodies with :mod:`clonequeue.api.models`,
bills with :mod:`clonequeue.api.billing`, and records everything in a ledger.

Start it with ``clonequeue simulator --port 8765 [--knob value …]`` or, in Python,
``with serve_in_thread(SimConfig(...)) as sim: sim.url``.

Behaviour
    Tasks go queued → processing → completed | failed, computed from the simulated
    clock (real time + an offset). Answers carry one undocumented field,
    ``traceId``. A clone whose fileUrl, or an audio whose contentText, contains
    ``__fail__`` always fails. Charge at create = billed chars / 10,000 ×
    price_per_10k_chars (+ voice_fee per audio); failed tasks are refunded when their
    failure time passes. A modelId is valid for 3 days after its clone completes
    unless an audio create used it before (that activates it for good).

Answers (HTTP status, code)
    200/20000 ok · 400/40000 invalid body or JSON (msg: ``field: rule; …``) ·
    400/40004 unknown modelId or clone not completed · 400/40010 modelId expired ·
    401/40100 bad or missing token · 402/40200 insufficient balance (200/40200 with
    ``balance_error="code200"``) · 404/40400 unknown task or path · 429/42900 rate
    limited, with ``Retry-After`` · 500, 502, 503/50000 injected server errors.

Order of one API request
    idle_close_s → latency_s → down="5xx" → rate limit → error_5xx_rate → auth → body → effect →
    lost response (creates only) or slow answer. Faults before the effect leave no
    trace but ``counts``; lost and slow answers happen after it.

Knobs (:class:`SimConfig`; CLI flags with dashes; ``PATCH /_sim/config`` at run time)
    tokens, initial_balance   accounts, start-only (CLI ``--token`` repeatable, ``--balance``)
    clone_queue_s, clone_processing_s, audio_queue_s, audio_processing_s, jitter_ratio
    failure_rate              fraction of tasks that fail (decided at creation)
    failure_msg               the msg of every failed task (None: a built-in reason)
    seed                      same requests in the same order → same outcomes (and ids,
                              within one simulator: a new one never reuses an id)
    price_per_10k_chars, voice_fee, balance_error ("http402" | "code200")
    error_5xx_rate            fraction of API requests answered 500/502/503, no effect
    rate_limit_per_s          at most N API requests per sliding real second (None: off)
    rate_limit_schedule       [[after_s, N], ...]: the limit becomes N after_s real seconds
                              after the knob was set (a limit that changes mid-run)
    latency_s                 added before every API answer
    latency_jitter_s          a further uniform [0, this] delay before admission (arrival jitter)
    slow_rate, slow_s         fraction of answers held slow_s after the effect happened
    trickle_rate, trickle_s   fraction of answers whose body comes a byte every trickle_s
    pad_bytes                 every successful answer's data gains a field this many bytes long
    lost_response_rate        fraction of creates that take effect, then close unanswered
    idle_close_s              a keep-alive connection idle this long is closed, seen by the
                              client only when it sends: that request is dropped unread and
                              counted "<METHOD> <route> idle_closed" (None: off)
    down, down_for_s          "5xx" (every API request 503) or "refuse" (listening socket
                              and open connections closed; down_for_s required, then it
                              binds the same port again); down_for_s is real time

Admin API (no auth; bind to 127.0.0.1; plain JSON, errors ``{"error": "..."}``)
    GET   /_sim/health              {"ok": true}
    GET   /_sim/config              all knobs (tokens never shown)
    PATCH /_sim/config              partial update, validated as a whole → all knobs; 400 if bad
    POST  /_sim/reset               tasks, ledger, balances, clock and knobs back to the start
    POST  /_sim/clock/advance       {"seconds": N} → {"offset_s", "now"}
    GET   /_sim/balance             {sha256(token)[:12]: balance}
    POST  /_sim/balance             {"token", "balance"} sets it (a new token becomes an account)
    GET   /_sim/ledger              {"creates": [{task_id, kind, body, body_sha256, chars,
                                    charge, at, answer: sent|lost|slow}], "polls": {task_id:
                                    [sim times]}, "refunds": [{task_id, amount, at}],
                                    "counts": {"<METHOD> <route> <status>": n}} with route
                                    clones|audios|task|other and status an HTTP status or
                                    "lost"; /_sim/ calls are not counted
    GET   /_sim/ledger/summary      creates_total, clones_total, audios_total, duplicates
                                    {body_sha256: n>1}, duplicate_creates, polls_total,
                                    http_429, http_5xx, lost_responses, slow_creates,
                                    charged_total, refunds_total, refunded_amount
    GET   /_sim/tasks/{id}          the internal record: status now, planned times, body, …

Polls are recorded (sim time) only for GETs that reached the task; ``at`` of a
refund is the simulated time the task failed.
"""

from __future__ import annotations

from clonequeue.simulator.clock import FakeTime, SimClock
from clonequeue.simulator.config import ConfigPatchError, SimConfig
from clonequeue.simulator.engine import Created, Engine
from clonequeue.simulator.server import (
    RunningSimulator,
    SimulatorServer,
    run_simulator,
    serve_in_thread,
)

__all__ = [
    "ConfigPatchError",
    "Created",
    "Engine",
    "FakeTime",
    "RunningSimulator",
    "SimClock",
    "SimConfig",
    "SimulatorServer",
    "run_simulator",
    "serve_in_thread",
]
