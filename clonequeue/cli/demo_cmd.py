"""``clonequeue demo``: run the whole pipeline locally on a sample batch."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workdir: Path = typer.Option(
        Path("demo-out"), "--workdir", help="Where the services' logs (and an embedded Redis) go."
    ),
    jobs: Path | None = typer.Option(
        None, "--jobs", help="A JSONL file to run instead of the bundled sample."
    ),
    timeout: float = typer.Option(110.0, "--timeout", help="Give up after this many seconds."),
) -> None:
    """Start Redis, the API simulator and a worker; run a sample batch; show results.

    The Redis is an embedded one of its own (under --workdir, deleted after), unless
    CLONEQUEUE_REDIS_URL is set (environment or .env): then that one, with the demo's
    keys under a namespace of their own, deleted after. Needs no token and no
    network: the simulator stands in for the JimmyAI API.
    """
    from clonequeue.demo.run import run_demo

    raise typer.Exit(run_demo(workdir, jobs_file=jobs, timeout_s=timeout))
