"""``clonequeue simulator``: the JimmyAI SoundClone API simulator in the foreground.

The knobs of :class:`clonequeue.simulator.SimConfig` a run starts with are flags here,
with the same name and help text; every knob (the rest too: :data:`EPILOG` lists them
in ``--help``) can be changed later with ``PATCH /_sim/config``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from clonequeue.api.models import describe_validation_error
from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_USAGE, fail
from clonequeue.config.token import clean_token
from clonequeue.redaction import register_secrets
from clonequeue.simulator import SimConfig, run_simulator

DEFAULT_PORT = 8765
_FIELDS = SimConfig.model_fields


def _help(name: str) -> str:
    return _FIELDS[name].description or ""


def _default(name: str) -> Any:
    return _FIELDS[name].default


def simulator(
    host: Annotated[
        str, typer.Option(help="Address to bind. The admin API has no auth: keep it local.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port; 0 picks a free one.")] = (
        DEFAULT_PORT
    ),
    token: Annotated[
        list[str] | None,
        typer.Option(
            help="An accepted bearer token (repeat for several). Default: sim-token. A "
            "command line is readable by every local user (ps, /proc): give a real token "
            "with --token-file or --token-from-env."
        ),
    ] = None,
    token_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--token-file",
            help="A file holding an accepted bearer token (repeat for several), e.g. "
            '"$CLONEQUEUE_API_TOKEN_FILE".',
        ),
    ] = None,
    token_from_env: Annotated[
        bool,
        typer.Option(
            "--token-from-env",
            help="Accept the token the workers send: CLONEQUEUE_API_TOKEN, or the file in "
            "CLONEQUEUE_API_TOKEN_FILE (the environment, else ./.env).",
        ),
    ] = False,
    balance: Annotated[float, typer.Option(help=_help("initial_balance"))] = _default(
        "initial_balance"
    ),
    seed: Annotated[int, typer.Option(help=_help("seed"))] = _default("seed"),
    clone_queue_s: Annotated[float, typer.Option(help=_help("clone_queue_s"))] = _default(
        "clone_queue_s"
    ),
    clone_processing_s: Annotated[float, typer.Option(help=_help("clone_processing_s"))] = (
        _default("clone_processing_s")
    ),
    audio_queue_s: Annotated[float, typer.Option(help=_help("audio_queue_s"))] = _default(
        "audio_queue_s"
    ),
    audio_processing_s: Annotated[float, typer.Option(help=_help("audio_processing_s"))] = (
        _default("audio_processing_s")
    ),
    jitter_ratio: Annotated[float, typer.Option(help=_help("jitter_ratio"))] = _default(
        "jitter_ratio"
    ),
    failure_rate: Annotated[float, typer.Option(help=_help("failure_rate"))] = _default(
        "failure_rate"
    ),
    price_per_10k_chars: Annotated[float, typer.Option(help=_help("price_per_10k_chars"))] = (
        _default("price_per_10k_chars")
    ),
    voice_fee: Annotated[float, typer.Option(help=_help("voice_fee"))] = _default("voice_fee"),
    balance_error: Annotated[str, typer.Option(help=_help("balance_error"))] = _default(
        "balance_error"
    ),
    error_5xx_rate: Annotated[float, typer.Option(help=_help("error_5xx_rate"))] = _default(
        "error_5xx_rate"
    ),
    rate_limit_per_s: Annotated[
        int | None, typer.Option(help=_help("rate_limit_per_s") + " Default: no limit.")
    ] = None,
    rate_limit_schedule: Annotated[
        str,
        typer.Option(
            help="AFTER_S:LIMIT,... e.g. '20:20,40:40': the limit becomes LIMIT requests/s "
            "AFTER_S real seconds after start (a limit changing mid-run). Default: none."
        ),
    ] = "",
    latency_s: Annotated[float, typer.Option(help=_help("latency_s"))] = _default("latency_s"),
    latency_jitter_s: Annotated[float, typer.Option(help=_help("latency_jitter_s"))] = _default(
        "latency_jitter_s"
    ),
    slow_rate: Annotated[float, typer.Option(help=_help("slow_rate"))] = _default("slow_rate"),
    slow_s: Annotated[float, typer.Option(help=_help("slow_s"))] = _default("slow_s"),
    lost_response_rate: Annotated[float, typer.Option(help=_help("lost_response_rate"))] = (
        _default("lost_response_rate")
    ),
    idle_close_s: Annotated[
        float | None, typer.Option(help=_help("idle_close_s") + " Default: off.")
    ] = None,
    down: Annotated[str | None, typer.Option(help=_help("down") + " Default: up.")] = None,
    down_for_s: Annotated[float | None, typer.Option(help=_help("down_for_s"))] = None,
) -> None:
    """Run a local, fault-injecting JimmyAI SoundClone API until Ctrl-C or SIGTERM.

    Point clonequeue at it with CLONEQUEUE_API_BASE_URL=http://HOST:PORT and
    CLONEQUEUE_API_TOKEN=sim-token (or start it with --token-from-env: it accepts
    your token, read from the environment, not the command line). The admin API
    (knobs, clock, balances, ledger) is under /_sim/.
    """
    knobs: dict[str, Any] = {
        "initial_balance": balance,
        "seed": seed,
        "clone_queue_s": clone_queue_s,
        "clone_processing_s": clone_processing_s,
        "audio_queue_s": audio_queue_s,
        "audio_processing_s": audio_processing_s,
        "jitter_ratio": jitter_ratio,
        "failure_rate": failure_rate,
        "price_per_10k_chars": price_per_10k_chars,
        "voice_fee": voice_fee,
        "balance_error": balance_error,
        "error_5xx_rate": error_5xx_rate,
        "rate_limit_per_s": rate_limit_per_s,
        "rate_limit_schedule": _schedule(rate_limit_schedule),
        "latency_s": latency_s,
        "latency_jitter_s": latency_jitter_s,
        "slow_rate": slow_rate,
        "slow_s": slow_s,
        "lost_response_rate": lost_response_rate,
        "idle_close_s": idle_close_s,
        "down": down,
        "down_for_s": down_for_s,
    }
    tokens = [*(token or ()), *(_file_token(path) for path in token_file or ())]
    if token_from_env:
        tokens.append(_env_token())
    if tokens:
        register_secrets(tokens)
        knobs["tokens"] = tuple(dict.fromkeys(tokens))
    try:
        config = SimConfig.model_validate(knobs)
    except ValidationError as exc:
        lines = describe_validation_error(exc)
        fail("invalid simulator option: " + "; ".join(lines), EXIT_USAGE)
    try:
        run_simulator(config, host, port, on_ready=_announce)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    print("simulator stopped", file=sys.stderr)


def _file_token(path: Path) -> str:
    """The token in ``path``, cleaned as a worker cleans it; a usage error names the file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        fail(f"--token-file: cannot read {path}: {reason}", EXIT_USAGE)
    try:
        return clean_token(raw, source=f"--token-file {path}")
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _env_token() -> str:
    """The token a worker started here would send: its own settings' reading of
    CLONEQUEUE_API_TOKEN or CLONEQUEUE_API_TOKEN_FILE (the environment and ./.env; a bad
    setting is the usual one-line error), never echoed."""
    token = context.settings().api_token
    if token is None or not token.get_secret_value():
        fail(
            "--token-from-env: neither CLONEQUEUE_API_TOKEN nor CLONEQUEUE_API_TOKEN_FILE is set",
            EXIT_USAGE,
        )
    return token.get_secret_value()


def _announce(url: str) -> None:
    print(f"simulator listening on {url}", flush=True)  # scripts wait for this line
    print(f"admin API at {url}/_sim/; Ctrl-C to stop", file=sys.stderr, flush=True)


def _schedule(text: str) -> list[tuple[float, int]]:
    """``'20:20,40:40'`` as ``[(20.0, 20), (40.0, 40)]``; a bad entry is a usage error."""
    entries = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        after, sep, limit = part.partition(":")
        try:
            if not sep:
                raise ValueError(part)
            entries.append((float(after), int(limit)))
        except ValueError:
            fail(f"--rate-limit-schedule: {part!r} is not AFTER_S:LIMIT", EXIT_USAGE)
    return entries


def _runtime_only_knobs() -> list[str]:
    """SimConfig's knobs with no flag here: set with ``PATCH /_sim/config`` only."""
    import inspect

    flags = set(inspect.signature(simulator).parameters) | {"initial_balance", "tokens"}
    return [name for name in _FIELDS if name not in flags]


EPILOG = (
    "**Admin API** (no auth; JSON): GET/PATCH /_sim/config (every knob, by its name "
    "with underscores; PATCH changes some), POST /_sim/reset, POST /_sim/clock/advance "
    '{"seconds": N}, GET /_sim/balance, POST /_sim/balance {"token", "balance"}, GET '
    "/_sim/ledger, GET /_sim/ledger/summary, GET /_sim/tasks/ID.\n\n"
    "**Knobs with no flag** (PATCH /_sim/config only): "
    + "; ".join(f"{name}: {_help(name)}" for name in _runtime_only_knobs())
)
