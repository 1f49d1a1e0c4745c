"""What a keep-alive-race-safe create costs: client CPU and wall time per create.

Run: ``.venv/bin/python bench/create_connection.py [--creates 400] [--rounds 3] [--quick]``

Why: a create sent on a pooled connection that the server had already closed is
lost unanswered, and its outcome is unknown (README, Assumptions). ApiClient gives
a create a pooled connection only if it was used within
``CLONEQUEUE_HTTP_CREATE_MAX_IDLE_S`` (1 s), else a fresh one. This measures what
that costs against today's behaviour before the change (any pooled connection).

Method
    The simulator runs as its own process. Each policy sends ``--creates`` clone
    creates one after another in one thread (a busy worker thread), then the same
    number with a pause of ``--idle-s`` (> 1 s) before every ``--idle-every``-th
    create (a quiet fleet). Client CPU is ``time.thread_time``, wall time
    ``perf_counter``, per create. Policies take turns, ``--rounds`` times; the figure
    is the median over rounds; the baseline is "reuse any pooled connection".

    * reuse any (before): ``create_max_idle_s=None``;
    * used within 1 s (default): ``create_max_idle_s=1.0``;
    * fresh for every create: ``create_max_idle_s=0``.

    Over TLS a fresh connection also costs a handshake (about one round trip and
    ~1 ms of CPU); the simulator is plain HTTP on 127.0.0.1, so these ratios are
    the lower bound of the fresh-connection cost and the exact cost of the default
    while creates are busy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import _harness as h
from pydantic import SecretStr

POLICIES: dict[str, float | None] = {
    "reuse any (before)": None,
    "used within 1 s (default)": 1.0,
    "fresh for every create": 0.0,
}
BASELINE = "reuse any (before)"


def measure(api: Any, request: Any, creates: int, *, idle_every: int, idle_s: float) -> tuple:
    """(CPU ms, wall ms) per create, pauses not counted."""
    api.create_clone(request)  # warm: one connection in the pool
    cpu = wall = 0.0
    for i in range(creates):
        if idle_every and i % idle_every == 0:
            time.sleep(idle_s)
        c0, w0 = time.thread_time(), time.perf_counter()
        api.create_clone(request)
        cpu += time.thread_time() - c0
        wall += time.perf_counter() - w0
    return cpu * 1000 / creates, wall * 1000 / creates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-every", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=1.2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.rounds, args.idle_every = 150, 2, 50

    from clonequeue.api.client import ApiClient
    from clonequeue.api.models import CloneRequest

    request = CloneRequest(fileUrl="https://voices.example.com/bench.mp3", contentText="Hi")
    patterns = {"busy": 0, "quiet": args.idle_every}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with h.workdir("create_connection") as path, h.LocalStack(path, namespace="bench") as stack:
        admin = stack.start_simulator("--balance", "100000000")
        for r in range(args.rounds):
            for pattern, idle_every in patterns.items():
                for name, max_idle in POLICIES.items():
                    with ApiClient(
                        admin.base_url, SecretStr(h.SIMULATOR_TOKEN), create_max_idle_s=max_idle
                    ) as api:
                        figure = measure(
                            api, request, args.creates, idle_every=idle_every, idle_s=args.idle_s
                        )
                    results.setdefault((pattern, name), []).append(figure)
                    print(
                        f"round {r + 1} {pattern:5} {name:27} cpu {figure[0] * 1000:6.0f} us"
                        f"  wall {figure[1] * 1000:6.0f} us",
                        flush=True,
                    )

    figures = []
    for pattern in patterns:
        for index, what in ((0, "CPU"), (1, "wall time")):
            base = statistics.median(v[index] for v in results[(pattern, BASELINE)])
            for name in POLICIES:
                values = [v[index] for v in results[(pattern, name)]]
                figures.append(
                    h.Figure(
                        f"{pattern} creates, {what} per create: {name}",
                        statistics.median(values) * 1000,
                        base * 1000,
                        "us",
                        BASELINE,
                        spread=h.spread([v * 1000 for v in values]),
                    )
                )
    h.print_table("Create cost per connection policy (median over rounds)", figures)
    for f in figures:
        print(f"  {f.name}: ratio {f.ratio:.2f}")
    h.write_result(
        "create_connection",
        figures,
        environment=h.environment(),
        settings=vars(args),
        per_round={f"{p} / {n}": v for (p, n), v in results.items()},
    )


if __name__ == "__main__":
    sys.exit(main())
