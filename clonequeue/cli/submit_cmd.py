"""``clonequeue submit`` and ``clonequeue estimate``: a JSONL, CSV or Parquet file (or stdin) in.

Exit codes: 0 every row accepted; 3 some rows rejected (the rest went ahead);
1 nothing submitted (an empty input, every row rejected, Redis unreachable,
unreadable file, estimate over --max-chars); 2 usage error. The batch id is
printed (last, on stdout) only when the batch exists, or, when every row was
submitted before in one batch, that batch's. ``--json`` prints one object in every
case: the same id (or null), and ``error`` when nothing was sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_OK, EXIT_REJECTED_ROWS, JsonCommand, fail
from clonequeue.cli.progress import SubmitProgress
from clonequeue.producers import estimate as estimates
from clonequeue.producers.errors import EstimateTooHighError, ProducerError
from clonequeue.producers.errors_file import default_errors_path
from clonequeue.producers.rows import RowError
from clonequeue.producers.sources import InputFile
from clonequeue.producers.submission import Submission, SubmitReport, nothing_submitted
from clonequeue.services import Services
from clonequeue.wording import plural

SHOWN_ERRORS = 20  # rejected rows printed on stderr; all of them are in the errors file
UNSIGNED_WARNING = (
    "warning: --webhook: CLONEQUEUE_WEBHOOK_SECRET (or CLONEQUEUE_WEBHOOK_SECRET_FILE) is not "
    "set here; the workers sign every delivery with it, and every delivery fails if they lack "
    "it too (check that they have it)"
)

FILE_ARG = typer.Argument(
    ...,
    metavar="FILE|-",
    help="JSONL, CSV (.gz too) or Parquet file of jobs (Parquet: the CSV columns, `audios` a "
    "list of structs; needs the parquet extra, pyarrow); '-' reads JSONL or CSV from stdin.",
)
FORMAT_OPT = typer.Option(
    None,
    "--format",
    "-f",
    help="jsonl, csv or parquet. Default: from the file's extension (.jsonl, .ndjson, .csv, "
    ".parquet, .pq); for stdin, sniffed.",
)


class SubmitCommand(JsonCommand):
    """``submit --json`` prints its one object (``batch`` null, ``error``) on any failure."""

    def usage_failure(self, message: str, options: list[str]) -> dict[str, object]:
        return {"batch": None, "dry_run": "--dry-run" in options, "error": message}

    def runtime_failure(
        self, exc: BaseException, message: str, params: dict[str, Any]
    ) -> dict[str, object]:
        return _failure_dict(exc, message, dry_run=bool(params.get("dry_run")))


def submit(
    file: str = FILE_ARG,
    input_format: str | None = FORMAT_OPT,
    batch: str | None = typer.Option(
        None,
        "--batch",
        "-b",
        help="Batch name (letters, digits, . _ -; not starting with -). Default: a new id. "
        "An existing name adds to that batch.",
    ),
    errors: Path | None = typer.Option(
        None,
        "--errors",
        help="Write rejected rows here. Default: `<FILE>.errors.jsonl` next to the input "
        "(`stdin.errors.jsonl` in the current folder for -); written only if a row is rejected.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and print the counts and the estimate; send nothing."
    ),
    max_chars: int | None = typer.Option(
        None,
        "--max-chars",
        min=1,
        help="Refuse the batch (send nothing) if the new jobs would bill more characters.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the summary as one JSON object on stdout, whatever the outcome (when "
        "nothing was sent, `error` says why).",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress and no rejected rows on stderr."
    ),
    webhook: str | None = typer.Option(
        None,
        "--webhook",
        help="POST this batch's events here, signed (Standard Webhooks): job.completed, "
        "job.failed, job.unknown, job.cancelled, batch.completed. Default: the workers' "
        "CLONEQUEUE_WEBHOOK_URL (the fleet default; this shell's is not used). For an "
        "existing batch it applies to the jobs that finish after it: jobs already finished "
        "are not sent.",
    ),
    artifacts: str | None = typer.Option(
        None,
        "--artifacts",
        help="Copy every finished audio and subtitle file here (file:///dir or "
        "s3://bucket/prefix). Default: the workers' CLONEQUEUE_ARTIFACTS_URL (the fleet "
        "default; this shell's is not used). For an existing batch, `clonequeue retry BATCH "
        "--artifacts` copies the files of jobs already finished.",
    ),
) -> None:
    """Validate jobs, record them in Redis and queue them. Prints the batch id last.

    Every row is checked before it is queued; a bad row is reported with its line,
    custom_id, field and rule, written to the errors file, and never stops the good
    rows. Blank lines are skipped. A custom_id submitted before is reported as
    already submitted, not sent again. Exit 0: all rows accepted; 3: some rejected;
    1: nothing submitted (empty input, every row rejected, or a fatal problem; no
    batch id is printed); 2: usage error.
    """
    from clonequeue.outputs.operate import check_targets

    check_targets(webhook, artifacts)
    settings = context.settings()
    if webhook and settings.webhook_secret is None:
        typer.echo(UNSIGNED_WARNING, err=True)
    source = InputFile.from_arg(file, input_format)
    services = Services(settings)
    errors_path = errors or default_errors_path(source.label)
    report = _run(
        Submission(
            source,
            services=services,
            batch=batch,
            dry_run=dry_run,
            max_chars=None if dry_run else max_chars,
            errors_path=errors_path,
            webhook=webhook,
            artifacts=artifacts,
        ),
        quiet=quiet,
    )
    exists = not report.accepted and services.batches.info(report.batch_id) is not None
    problem = nothing_submitted(report, batch_exists=exists) or (
        _over_limit(report, max_chars) if dry_run else None
    )
    printed = None if dry_run or problem else _batch_to_print(report, services)
    not_applied = None if dry_run else _not_applied(report, webhook=webhook, artifacts=artifacts)
    if as_json:
        _print_json(report, printed, not_applied, problem)
    else:
        _print_text(report, printed, not_applied, problem)
    if problem is not None:
        fail(str(problem))
    raise typer.Exit(EXIT_REJECTED_ROWS if report.rejected else EXIT_OK)


def estimate(
    file: str = FILE_ARG,
    input_format: str | None = FORMAT_OPT,
    errors: Path | None = typer.Option(
        None, "--errors", help="Write rejected rows here. Default: no errors file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No rejected rows on stderr."),
) -> None:
    """Check every row and print what the file would bill; needs no Redis, sends nothing.

    Characters billed (preview and production separately, per the billing rules)
    and the number of create submissions. Exit 0: every row valid; 3: some rejected;
    1: the input holds no job (it is empty, or has only blank lines: `submit` would
    send nothing and exit 1 too); 2: usage error.
    """
    source = InputFile.from_arg(file, input_format)
    report = _run(Submission(source, services=None, errors_path=errors), quiet=quiet)
    empty = (
        None
        if report.rows
        else "the input holds no job (it is empty, or has only blank lines); nothing to estimate"
    )
    if as_json:
        summary: dict[str, object] = report_dict(report)
        if empty is not None:
            summary["error"] = empty
        typer.echo(json.dumps(summary))
    elif empty is None:
        typer.echo(describe_report(report, estimate_only=True))
    if empty is not None:
        fail(empty)
    raise typer.Exit(EXIT_REJECTED_ROWS if report.rejected else EXIT_OK)


def _print_json(
    report: SubmitReport,
    printed: str | None,
    not_applied: dict[str, object] | None,
    problem: ProducerError | None,
) -> None:
    """One object on stdout, whatever the outcome; the note goes to stderr too."""
    summary = {**report_dict(report, batch=printed), "not_applied": not_applied}
    if problem is not None:
        summary.update(_failure_dict(problem, str(problem), dry_run=report.dry_run))
    typer.echo(json.dumps(summary))
    if not_applied is not None:
        typer.echo(f"note: {not_applied['note']}", err=True)


def _print_text(
    report: SubmitReport,
    printed: str | None,
    not_applied: dict[str, object] | None,
    problem: ProducerError | None,
) -> None:
    """The summary on stderr (stdout for a dry run: it is the result); the batch id last."""
    if report.dry_run:
        typer.echo(describe_report(report))
        return
    typer.echo(describe_report(report), err=True)
    if problem is None and printed != report.batch_id:
        typer.echo(_where_they_are(report), err=True)
    if not_applied is not None:
        typer.echo(f"note: {not_applied['note']}", err=True)
    if printed is not None:
        typer.echo(printed)


def _failure_dict(exc: BaseException, message: str, *, dry_run: bool) -> dict[str, object]:
    """``batch`` null (nothing printed as one), ``error``; over --max-chars, the two numbers."""
    from clonequeue.redaction import redact

    failure: dict[str, object] = {"batch": None, "dry_run": dry_run}
    if isinstance(exc, EstimateTooHighError):
        failure["estimate"] = {"total_chars": exc.estimate_chars}
        failure["max_chars"] = exc.limit_chars
    failure["error"] = redact(message)
    return failure


def _over_limit(report: SubmitReport, max_chars: int | None) -> EstimateTooHighError | None:
    """A dry run's refusal, as a value: the summary is printed before it ends the command."""
    try:
        estimates.check_limit(report.estimate, max_chars)
    except EstimateTooHighError as exc:
        return exc
    return None


def _batch_to_print(report: SubmitReport, services: Services) -> str | None:
    """The batch id submit prints (text and --json alike): this batch if it exists, else
    the one batch that holds every row (all submitted before), else none."""
    if report.new > 0 or services.batches.info(report.batch_id) is not None:
        return report.batch_id
    holders = list(report.already_in)
    return holders[0] if len(holders) == 1 else None


def _where_they_are(report: SubmitReport) -> str:
    """Every row was submitted before: why the id printed is not the requested batch's."""
    holders = list(report.already_in)
    rows = "every row accepted" if report.rejected else "every row"
    if len(holders) == 1:
        return (
            f"{rows} was submitted before, in batch {holders[0]}: nothing new was sent "
            f"and batch {report.batch_id} was not created; printing {holders[0]}"
        )
    return (
        f"{rows} was submitted before, in {len(holders)} batches: nothing new was sent "
        f"and batch {report.batch_id} was not created (no batch id printed)"
    )


def _not_applied(
    report: SubmitReport, *, webhook: str | None, artifacts: str | None
) -> dict[str, object] | None:
    """--webhook/--artifacts are this batch's; rows found in another batch keep that one's.

    Without a word, ``submit --batch b2 --artifacts URL`` of rows already in b1 looks as
    if their files would be copied.
    """
    given = (("--webhook", webhook), ("--artifacts", artifacts))
    options = [name for name, value in given if value]
    elsewhere = {b: n for b, n in report.already_in.most_common() if b != report.batch_id}
    if not options or not elsewhere:
        return None
    if len(elsewhere) == 1:
        where = f"batch {next(iter(elsewhere))}"
    else:
        where = "batches " + ", ".join(f"{b} ({n:,})" for b, n in elsewhere.items())
    rows = plural(sum(elsewhere.values()), "row")
    note = (
        f"{' and '.join(options)} did not apply to the {rows} already "
        f"submitted in {where}: a row submitted again stays in its batch, with that batch's "
        "webhook and artifact store"
    )
    return {"options": options, "batches": elsewhere, "note": note}


def _run(submission: Submission, *, quiet: bool) -> SubmitReport:
    label = (
        "estimate" if submission.services is None else "dry run" if submission.dry_run else "submit"
    )
    progress = SubmitProgress(enabled=not quiet, label=label)
    shown = 0

    def on_error(error: RowError) -> None:
        nonlocal shown
        shown += 1
        if not quiet and shown <= SHOWN_ERRORS:
            progress.print(f"rejected: {error}")

    submission.on_error = on_error
    submission.on_progress = progress.update
    with progress:
        report = submission.run()
    if not quiet and report.rejected > SHOWN_ERRORS:
        more = report.rejected - SHOWN_ERRORS
        if report.errors_path:
            where = f" (all in {report.errors_path})"
        else:  # estimate keeps no errors file unless asked
            where = "; `--errors FILE` writes them all to FILE"
        progress.print(f"… and {plural(more, 'more rejected row')}{where}")
    return report


def describe_report(report: SubmitReport, *, estimate_only: bool = False) -> str:
    """Two lines: what became of the rows, and what the new jobs will bill."""
    parts = [f"new {report.new:,}"]
    if report.already_submitted:
        where = ", ".join(f"{b} ({n:,})" for b, n in report.already_in.most_common(3))
        more = ", …" if len(report.already_in) > 3 else ""
        parts.append(f"already submitted {report.already_submitted:,} in batch {where}{more}")
    if report.repeats:
        parts.append(f"repeated in the input {report.repeats:,} (skipped)")
    line = f"{plural(report.rows, 'row')}: accepted {report.accepted:,} ({'; '.join(parts)})"
    line += f", rejected {report.rejected:,}"
    if report.errors_path is not None:
        line += f" (see {report.errors_path})"
    if report.dry_run and not estimate_only:
        line += "; dry run: nothing sent"
    return f"{line}\nestimate: {estimates.describe(report.estimate)}"


def report_dict(report: SubmitReport, *, batch: str | None = None) -> dict[str, object]:
    """The summary for ``--json``; ``batch`` is the id text mode prints (null when none)."""
    return {
        "batch": batch,
        "dry_run": report.dry_run,
        "rows": report.rows,
        "accepted": report.accepted,
        "new": report.new,
        "already_submitted": report.already_submitted,
        "already_in": dict(report.already_in),
        "repeats": report.repeats,
        "rejected": report.rejected,
        "conflicts": report.conflicts,
        "errors_file": str(report.errors_path) if report.errors_path else None,
        "estimate": estimates.as_dict(report.estimate),
    }
