"""Requests per second the simulator serves, next to a bare tornado handler on this machine.

Run: ``.venv/bin/python bench/simulator_throughput.py [--duration-s 5] [--connections 64]``

Each server runs in its own process (one IOLoop, as in production use); the load
comes from ``wrk`` when installed (one thread, so the server keeps a core of a
2-core machine), else from a threaded urllib3 generator in this process. Measured:

* GET polls of one existing task (``GET /api/open-api/v1/audios/{id}``);
* POST creates of a clone (validation, billing, a new task and a ledger entry each);
* the baseline: a bare tornado handler answering a constant JSON body, same load.

The figure that matters is the ratio: the simulator's work per request on top of
tornado's own. Absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clonequeue.constants import CLONE_PATH, TASK_PATH_PREFIX  # noqa: E402
from clonequeue.local.ports import free_port, wait_for_port  # noqa: E402

TOKEN = "sim-token"
CLONE_BODY = {"fileUrl": "https://example.com/voices/speaker.mp3", "language": "English"}
BASELINE_BODY = (
    b'{"code":20000,"msg":"ok","data":{"id":"audio_0","object":"audio","status":"queued"}}'
)
WRK = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)


# --- the servers (run as child processes of this script) --------------------------------------


def serve_baseline(port: int) -> None:
    import asyncio

    import tornado.web

    class Constant(tornado.web.RequestHandler):
        def compute_etag(self):
            return None

        def get(self, *_):
            self.set_header("Content-Type", "application/json")
            self.finish(BASELINE_BODY)

        post = get

    async def main() -> None:
        app = tornado.web.Application([(r"/.*", Constant)], log_function=lambda _: None)
        app.listen(port, address="127.0.0.1")
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_simulator(port: int) -> None:
    from clonequeue.simulator import SimConfig, run_simulator

    config = SimConfig(initial_balance=1e12, clone_queue_s=5, clone_processing_s=30)
    run_simulator(config, "127.0.0.1", port, on_ready=lambda url: print("ready", flush=True))


class Server:
    """One server child process on a free port."""

    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, timeout_s=20)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# --- load generators ---------------------------------------------------------------------------

LUA_POST = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def wrk_rate(url: str, *, post: bool, duration_s: float, connections: int) -> tuple[float, int]:
    """(requests/s, non-2xx answers) from one wrk run."""
    assert WRK is not None
    args = [WRK, "-t1", f"-c{connections}", f"-d{duration_s:g}s"]
    with tempfile.TemporaryDirectory() as tmp:
        if post:
            script = Path(tmp) / "post.lua"
            script.write_text(LUA_POST.format(body=json.dumps(json.dumps(CLONE_BODY)), token=TOKEN))
            args += ["-s", str(script)]
        else:
            args += ["-H", f"Authorization: Bearer {TOKEN}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        print(f"    wrk: {errors.group(0)}")
    return rate, int(bad.group(1)) if bad else 0


def python_rate(url: str, *, post: bool, duration_s: float, connections: int) -> tuple[float, int]:
    """The fallback without wrk: threads with keep-alive urllib3 pools (GIL-bound, lower)."""
    threads = min(connections, 16)
    body = json.dumps(CLONE_BODY).encode() if post else None
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    counts = [0] * threads
    bad = [0] * threads
    deadline = time.monotonic() + duration_s

    def worker(index: int) -> None:
        pool = urllib3.connection_from_url(url, maxsize=1, retries=False)
        path = urllib3.util.parse_url(url).request_uri
        while time.monotonic() < deadline:
            response = pool.urlopen("POST" if post else "GET", path, body=body, headers=headers)
            counts[index] += 1
            bad[index] += response.status >= 300

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sum(counts) / (time.monotonic() - started), sum(bad)


def measure(url: str, *, post: bool, duration_s: float, connections: int) -> tuple[float, int]:
    load = wrk_rate if WRK else python_rate
    return load(url, post=post, duration_s=duration_s, connections=connections)


# --- the benchmark -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", choices=["baseline", "simulator"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "baseline":
        serve_baseline(args.port)
        return
    if args.serve == "simulator":
        serve_simulator(args.port)
        return

    load = {"duration_s": args.duration_s, "connections": args.connections}
    print(f"load: {'wrk (1 thread)' if WRK else 'python threads'}, "
          f"{args.connections} connections, {args.duration_s:g} s per figure")  # fmt: skip
    baseline = Server("baseline")
    try:
        base_get, _ = measure(f"{baseline.url}/x", post=False, **load)
        base_post, _ = measure(f"{baseline.url}/x", post=True, **load)
    finally:
        baseline.close()

    simulator = Server("simulator")
    try:
        http = urllib3.PoolManager(retries=False)
        created = http.request(
            "POST", simulator.url + CLONE_PATH, json=CLONE_BODY,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        task_id = json.loads(created.data)["data"]["id"]
        sim_get, bad_get = measure(
            f"{simulator.url}{TASK_PATH_PREFIX}{task_id}", post=False, **load
        )
        sim_post, bad_post = measure(simulator.url + CLONE_PATH, post=True, **load)
        summary = json.loads(http.request("GET", simulator.url + "/_sim/ledger/summary").data)
    finally:
        simulator.close()

    print(f"{'':22}{'simulator':>12}{'baseline':>12}{'ratio':>8}")
    print(f"{'GET poll (req/s)':22}{sim_get:12.0f}{base_get:12.0f}{sim_get / base_get:8.2f}")
    print(f"{'POST create (req/s)':22}{sim_post:12.0f}{base_post:12.0f}{sim_post / base_post:8.2f}")
    print(f"ledger: {summary['creates_total']} creates, {summary['polls_total']} polls; "
          f"non-2xx answers: {bad_get} GET, {bad_post} POST")  # fmt: skip
    report(sim_get, base_get, sim_post, base_post)


def report(sim_get: float, base_get: float, sim_post: float, base_post: float) -> None:
    """bench/out/simulator_throughput.json and .png, for run_all's summary."""
    import _harness as h

    baseline = "bare tornado handler"
    figures = [
        h.Figure("GET polls served", sim_get, base_get, "req/s", baseline, ">= 2000 req/s",
                 sim_get >= 2000),
        h.Figure("POST creates served", sim_post, base_post, "req/s", baseline),
    ]  # fmt: skip
    h.write_result("simulator_throughput", figures, environment=h.environment(), wrk=bool(WRK))
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = ["GET: simulator", "GET: baseline", "POST: simulator", "POST: baseline"]
    ax.barh(labels[::-1], [sim_get, base_get, sim_post, base_post][::-1])
    ax.set(title="requests/s served (one process)", xlabel="req/s")
    h.save_plot(fig, "simulator_throughput")


if __name__ == "__main__":
    main()
