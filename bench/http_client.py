"""Client CPU per keep-alive GET against the simulator: requests vs urllib3 vs our ApiClient.

Run: ``.venv/bin/python bench/http_client.py [--calls 2000] [--rounds 5] [--quick]``

Why: clonequeue/api/client.py is built on urllib3's pool directly, not on
``requests.Session``, on the claim that a keep-alive GET costs about half the client
CPU. This measures it. ``requests`` is not a dependency of clonequeue: install it
into the venv for this measurement (``.venv/bin/pip install requests``); without
it the requests rows are skipped.

Method
    The simulator runs as its own process (embedded Redis is not needed); one clone
    task is created and every client GETs it over one keep-alive connection, one
    call after another in one thread. Client CPU per call is ``time.thread_time``
    over ``--calls`` calls after 50 warm-up calls (server time is not counted).
    Clients take turns, ``--rounds`` times, so machine noise hits them alike; the
    figure is the median over rounds, with the spread.

    * urllib3 pool (the baseline): ``HTTPConnectionPool.urlopen`` + ``.data``;
    * requests.Session: ``session.get(url).content``, default settings;
    * requests.Session(trust_env=False): no proxy/netrc look-up in the environment
      per request;
    * ApiClient.get_task: ours (urllib3 + envelope check + JSON + pydantic
      ``RemoteTask`` + Prometheus counters);
    * requests + our parsing: ``Session(trust_env=False)`` followed by the same
      ``parse_response`` ApiClient uses, i.e. what ApiClient would cost on requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import _harness as h
import urllib3
from pydantic import SecretStr

GOAL = "requests >= 1.5x urllib3 (else the choice is not justified by CPU)"


def clients(admin: Any, task_id: str) -> dict[str, Callable[[], Any]]:
    from clonequeue.api.client import ApiClient
    from clonequeue.api.responses import parse_response
    from clonequeue.local.stack import SIMULATOR_TOKEN

    url = h.task_url(admin, task_id)
    parts = urllib3.util.parse_url(url)
    headers = {"Authorization": f"Bearer {SIMULATOR_TOKEN}"}
    pool = urllib3.HTTPConnectionPool(parts.host, parts.port, maxsize=1, retries=False)
    api = ApiClient(admin.base_url, SecretStr(SIMULATOR_TOKEN), max_connections=1)
    made: dict[str, Callable[[], Any]] = {
        "urllib3 pool": lambda: pool.urlopen("GET", parts.request_uri, headers=headers).data,
        "ApiClient.get_task": lambda: api.get_task(task_id),
    }
    try:
        import requests
    except ImportError:
        print("requests is not installed: its rows are skipped (.venv/bin/pip install requests)")
        return made
    plain = requests.Session()
    plain.headers.update(headers)
    bare = requests.Session()
    bare.trust_env = False
    bare.headers.update(headers)

    def requests_parsed() -> Any:
        response = bare.get(url)
        return parse_response(
            status=response.status_code,
            body=response.content,
            retry_after=response.headers.get("Retry-After"),
            endpoint="GET task",
            is_create=False,
        )

    made["requests.Session"] = lambda: plain.get(url).content
    made["requests.Session(trust_env=False)"] = lambda: bare.get(url).content
    made["requests(trust_env=False) + our parsing"] = requests_parsed
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 500, 2

    with h.workdir("http") as path, h.LocalStack(path, namespace="bench") as stack:
        admin = stack.start_simulator("--balance", "1000000")
        task_id = h.simulator_task(admin)
        calls = clients(admin, task_id)
        per_round: dict[str, list[float]] = {name: [] for name in calls}
        for r in range(args.rounds):
            for name, call in calls.items():
                per_round[name].append(h.cpu_per_call_ms(call, args.calls))
            print(
                f"round {r + 1}: "
                + ", ".join(f"{n} {v[-1] * 1000:.0f} us" for n, v in per_round.items()),
                flush=True,
            )

    median = {name: statistics.median(v) for name, v in per_round.items()}
    base = median["urllib3 pool"]
    figures = []
    for name, values in per_round.items():
        ratios = [v / b for v, b in zip(values, per_round["urllib3 pool"], strict=True)]
        figure = h.Figure(
            f"client CPU per GET: {name}",
            median[name] * 1000,
            base * 1000,
            "us",
            "urllib3 pool",
            spread=f"ratio per round {min(ratios):.2f}-{max(ratios):.2f}",
        )
        if name == "requests.Session":
            figure.goal = ">= 1.5x (claim: about 2x)"
            figure.met = median[name] >= 1.5 * base
        figures.append(figure)
    h.print_table("HTTP client CPU per keep-alive GET (median over rounds)", figures)
    for f in figures:
        print(f"  {f.name}: {f.spread}")
    h.write_result(
        "http_client",
        figures,
        environment=h.environment(),
        settings=vars(args),
        per_round_ms=per_round,
    )
    plot(per_round)


def plot(per_round: dict[str, list[float]]) -> None:
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = list(per_round)
    us = [[v * 1000 for v in per_round[n]] for n in names]
    ax.boxplot(us, orientation="horizontal", tick_labels=names)
    ax.set(title="client CPU per keep-alive GET (one box per client, one point per round)")
    ax.set_xlabel("µs of client CPU")
    ax.set_xlim(left=0)
    h.save_plot(fig, "http_client")


if __name__ == "__main__":
    sys.exit(main())
