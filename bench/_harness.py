"""What every benchmark under bench/ shares: the stack, the meters, the baselines, the output.

A benchmark starts everything it measures itself, with :mod:`clonequeue.local`: an
embedded Redis on a free port (never the machine's 6379), the simulator and the
workers as real child processes, each in its own process group, stopped on exit
and on Ctrl-C. Figures are reported next to a baseline measured in the same run
(the machine is shared and noisy, so absolute numbers mean little; ratios do):

* worker CPU: ``psutil`` CPU-time deltas of the worker's process tree (user +
  system) over a window, sampled every :data:`SAMPLE_EVERY_S` by :class:`Meter`;
* bare Celery: a Celery app with one no-op task, the same broker (another db of the
  same embedded Redis), the threads pool, the same concurrency and events setting
  and our acks/prefetch/serializer settings (``_bare_worker.py``);
* bare HTTP: a urllib3 keep-alive GET loop against the simulator, in this process,
  CPU measured with ``time.thread_time``.

Each benchmark writes ``bench/out/<name>.json`` (its figures and raw series) and
``bench/out/<name>.png``; ``run_all.py`` turns the JSON files into ``summary.md``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import urllib3

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clonequeue.constants import CLONE_PATH, TASK_PATH_PREFIX  # noqa: E402
from clonequeue.local.processes import ManagedProcess  # noqa: E402
from clonequeue.local.stack import SIMULATOR_TOKEN, LocalStack, SimulatorAdmin  # noqa: E402

SAMPLE_EVERY_S = 0.5
MB = 1024 * 1024

# The worker's settings in every benchmark unless it overrides them: the production
# polling cadence (5 -> 10 s), a rate limit and an in-flight cap that do not bind.
BENCH_ENV = {
    "CLONEQUEUE_API_RATE_LIMIT": "5000/second",
    "CLONEQUEUE_MAX_IN_FLIGHT": "100000",
    "CLONEQUEUE_WATCHDOG_INTERVAL_S": "10",
}


# --- figures and output ---------------------------------------------------------------------


@dataclass
class Figure:
    """One line of a benchmark's table (and of summary.md)."""

    name: str
    value: float
    baseline: float | None = None
    unit: str = ""
    baseline_name: str = ""
    goal: str = ""  # human-readable, e.g. "<= 1.5x"
    met: bool | None = None  # None: no goal
    spread: str = ""  # e.g. "1.31-1.38 over 3 runs"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if magnitude < 100 else f"{value:.0f}"


def met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def print_table(title: str, figures: Sequence[Figure]) -> None:
    """The figure, its baseline, their ratio, the goal and whether it is met."""
    header = ("figure", "value", "baseline", "ratio", "goal", "met")
    rows = [
        (
            f.name,
            f"{fmt(f.value)} {f.unit}".strip(),
            f"{fmt(f.baseline)} ({f.baseline_name})" if f.baseline is not None else "-",
            f"{fmt(f.ratio)}x" if f.ratio is not None else "-",
            f.goal or "-",
            met_text(f.met),
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n== {title}")
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    for f in figures:
        if f.note:
            print(f"  * {f.name}: {f.note}")


def write_result(name: str, figures: Sequence[Figure], **data: Any) -> Path:
    """bench/out/<name>.json: the figures (as the table shows them) plus raw data."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    payload = {
        "bench": name,
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        **data,
    }
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def save_plot(fig: Any, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: stable bytes
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n runs)`` for repeated measurements."""
    if len(values) == 1:
        return fmt(values[0])
    low, high = fmt(min(values)), fmt(max(values))
    return f"{fmt(statistics.median(values))} ({low}-{high}, n={len(values)})"


# --- meters ---------------------------------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live children."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_rss(pid: int) -> int:
    """Resident memory of the process itself (the pool's threads live in it), bytes."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


@dataclass
class Sample:
    t: float  # time.time()
    cpu_s: dict[str, float]
    rss: dict[str, int]


class Meter:
    """Samples CPU and RSS of named processes every ``SAMPLE_EVERY_S`` in a thread."""

    def __init__(self, pids: dict[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        self.pids = dict(pids)
        self.every_s = every_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="meter")

    def __enter__(self) -> Meter:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def sample(self) -> Sample:
        s = Sample(
            time.time(),
            {n: tree_cpu_s(p) for n, p in self.pids.items()},
            {n: tree_rss(p) for n, p in self.pids.items()},
        )
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def cpu_between(self, names: Iterable[str], t0: float, t1: float) -> float:
        """CPU seconds the named processes used between t0 and t1 (interpolated)."""
        return sum(self._at(n, t1) - self._at(n, t0) for n in names)

    def _at(self, name: str, t: float) -> float:
        points = [(s.t, s.cpu_s[name]) for s in self.samples if name in s.cpu_s]
        points = [(a, b) for a, b in points if not math.isnan(b)]
        if not points:
            return float("nan")
        if t <= points[0][0]:
            return points[0][1]
        for (ta, ca), (tb, cb) in itertools.pairwise(points):
            if ta <= t <= tb:
                return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else cb
        return points[-1][1]

    def peak_rss(self, name: str) -> int:
        return max((s.rss.get(name, 0) for s in self.samples), default=0)

    def series(self, name: str) -> dict[str, list[float]]:
        """Times, CPU (cores used since the previous sample) and RSS (MB) for plots."""
        t, cores, rss = [], [], []
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            if name in a.cpu_s and name in b.cpu_s and b.t > a.t:
                t.append(b.t)
                cores.append((b.cpu_s[name] - a.cpu_s[name]) / (b.t - a.t))
                rss.append(b.rss.get(name, 0) / MB)
        return {"t": t, "cores": cores, "rss_mb": rss}


# --- the system under test -----------------------------------------------------------------------


@contextmanager
def workdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"cq-bench-{name}-") as tmp:
        yield Path(tmp)


def start_stack(
    path: Path, *, sim_args: Sequence[str] = (), env: dict[str, str] | None = None
) -> LocalStack:
    """Embedded Redis + the simulator (with ``sim_args`` knobs); workers come later."""
    stack = LocalStack(path, namespace="bench", extra_env={**BENCH_ENV, **(env or {})})
    try:
        stack.start_redis(embedded=True)
        stack.start_simulator("--balance", "1000000000", *sim_args)
    except BaseException:
        stack.stop()
        raise
    return stack


def services_for(stack: LocalStack) -> Any:
    """Producer-side services (job store, Celery app) pointed at this stack."""
    from clonequeue.config import load_settings
    from clonequeue.services import Services

    overrides = {k.removeprefix("CLONEQUEUE_").lower(): v for k, v in stack.settings_env().items()}
    return Services(load_settings(env_file=None, **overrides))


def make_rows(count: int, *, audios: int = 0, prefix: str = "job") -> list[dict[str, Any]]:
    """Jobs with unique bodies (the ledger tells creates apart by body)."""
    rows = []
    for i in range(count):
        cid = f"{prefix}-{i:06d}"
        rows.append(
            {
                "custom_id": cid,
                "clone": {"fileUrl": f"https://voices.example.com/{cid}.mp3"},
                "audios": [
                    {"contentText": f"Line {k} of {cid}. <#0.2#> Thank you."} for k in range(audios)
                ],
            }
        )
    return rows


def submit(services: Any, rows: list[dict[str, Any]], batch: str) -> str:
    from clonequeue.producers.api import submit_specs

    result = submit_specs(rows, services=services, batch=batch)
    if result.rejected:
        raise RuntimeError(f"rows rejected: {result.rejected[:3]}")
    return str(result.batch_id)


def wait_finished(
    services: Any,
    batch: str,
    timeout_s: float,
    *,
    on_tick: Callable[[Any], None] | None = None,
) -> Any:
    """Block until every job of ``batch`` is terminal; raises TimeoutError with the counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = services.batches.info(batch)
        if on_tick is not None and info is not None:
            on_tick(info)
        if info is not None and info.is_finished:
            return info
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch} unfinished after {timeout_s:g} s: {info}")
        time.sleep(0.5)


def job_docs(services: Any, batch: str) -> list[dict[str, Any]]:
    return list(services.batches.docs(batch))


def sim_tasks(admin: SimulatorAdmin, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The simulator's record of each task (planned times) by id."""
    return {tid: admin._call("GET", f"tasks/{tid}") for tid in task_ids}


def steps_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc["clone"], *(doc.get("audios") or [])]


def detection_lags(docs: Iterable[dict[str, Any]], tasks: dict[str, dict[str, Any]]) -> list[float]:
    """Seconds from the remote task's finish to our record of it, per completed step."""
    lags = []
    for doc in docs:
        for step in steps_of(doc):
            task = tasks.get(step.get("remote_id") or "")
            if step.get("state") == "completed" and task and step.get("completed_at"):
                lags.append(float(step["completed_at"]) - float(task["finished_at"]))
    return lags


def worker_pids(stack: LocalStack) -> dict[str, int]:
    return {w.name: w.pid for w in stack.workers if w.pid is not None}


# --- baselines -----------------------------------------------------------------------------------

BARE_WORKER = ROOT / "bench" / "_bare_worker.py"
BARE_QUEUE = "bench.noop"


def bare_noop(
    redis_url: str,
    path: Path,
    *,
    tasks: int,
    concurrency: int = 50,
    events: bool = True,
    db: int = 15,
) -> dict[str, float]:
    """A bare Celery worker draining ``tasks`` pre-published no-op tasks.

    Returns ``cpu_ms_per_task`` (worker process tree CPU from "ready" to drained,
    divided by ``tasks``) and ``tasks_per_s``. The tasks are published before the
    worker starts, so the rate is the worker's, not the publisher's.
    """
    import redis
    from _bare_worker import make_app

    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = make_app(url, concurrency)
    with app.producer_or_acquire() as producer:
        for _ in range(tasks):
            app.send_task("bench.noop", queue=BARE_QUEUE, producer=producer)
    argv = [sys.executable, str(BARE_WORKER), url, str(concurrency), "on" if events else "off"]
    process = ManagedProcess(
        argv, log_path=path / f"bare-{'events' if events else 'noevents'}.log", name="bare"
    )
    with process:
        process.wait_ready(line="ready.", timeout_s=60)
        assert process.pid is not None
        cpu0, t0 = tree_cpu_s(process.pid), time.monotonic()
        while client.llen(BARE_QUEUE) or client.hlen("unacked"):
            time.sleep(0.01)
            if time.monotonic() - t0 > 300:
                raise TimeoutError("bare worker did not drain its queue")
        t1, cpu1 = time.monotonic(), tree_cpu_s(process.pid)
    client.flushdb()
    client.close()
    return {"cpu_ms_per_task": (cpu1 - cpu0) * 1000 / tasks, "tasks_per_s": tasks / (t1 - t0)}


def simulator_task(admin: SimulatorAdmin) -> str:
    """Create one clone task on the simulator (for GET loops); returns its id."""
    http = urllib3.PoolManager(retries=False)
    response = http.request(
        "POST",
        admin.base_url + CLONE_PATH,
        body=json.dumps({"fileUrl": f"https://voices.example.com/get-{time.time_ns()}.mp3"}),
        headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}", "Content-Type": "application/json"},
    )
    return str(json.loads(response.data)["data"]["id"])


def task_url(admin: SimulatorAdmin, task_id: str) -> str:
    return f"{admin.base_url}{TASK_PATH_PREFIX}{task_id}"


def cpu_per_call_ms(call: Callable[[], Any], n: int) -> float:
    """Client CPU (this thread) per call, in ms, after a short warm-up."""
    for _ in range(min(50, n)):
        call()
    c0 = time.thread_time()
    for _ in range(n):
        call()
    return (time.thread_time() - c0) * 1000 / n


def bare_get_ms(admin: SimulatorAdmin, task_id: str, n: int) -> float:
    """Client CPU per keep-alive GET with a bare urllib3 pool (the HTTP baseline)."""
    url = task_url(admin, task_id)
    parts = urllib3.util.parse_url(url)
    pool = urllib3.HTTPConnectionPool(parts.host, parts.port, maxsize=1, retries=False)
    headers = {"Authorization": f"Bearer {SIMULATOR_TOKEN}"}
    try:
        return cpu_per_call_ms(
            lambda: pool.urlopen("GET", parts.request_uri, headers=headers).data, n
        )
    finally:
        pool.close()


@dataclass
class Baseline:
    """The per-poll baseline: a bare Celery no-op task plus a bare HTTP GET."""

    noop_cpu_ms: float
    noop_tasks_per_s: float
    get_cpu_ms: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def per_poll_ms(self) -> float:
        return self.noop_cpu_ms + self.get_cpu_ms


def measure_baseline(
    stack: LocalStack, path: Path, *, tasks: int, gets: int, concurrency: int, events: bool = True
) -> Baseline:
    assert stack.admin is not None
    noop = bare_noop(stack.redis_url, path, tasks=tasks, concurrency=concurrency, events=events)
    get_ms = bare_get_ms(stack.admin, simulator_task(stack.admin), gets)
    return Baseline(noop["cpu_ms_per_task"], noop["tasks_per_s"], get_ms)


def banner(text: str) -> None:
    print(f"\n--- {text}", flush=True)


def environment() -> dict[str, Any]:
    """Machine facts stored with every result."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_avg_at_start": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# --- one load step: N jobs in flight ------------------------------------------------------------


def scheduled_intervals(min_s: float, max_s: float, factor: float, jitter: float) -> list[float]:
    """The poll schedule's upper bounds: first poll after create, then each next one."""
    first = min(max_s, min_s * (1 + jitter))
    return [first] + [min(max_s, min_s * factor**k) for k in range(1, 40)]


@dataclass
class StepStats:
    """What one batch of N in-flight jobs showed: cadence, lag, CPU per poll, memory."""

    jobs: int
    states: dict[str, int]
    create_span_s: float  # first create -> last create
    window_s: float  # steady window: all created, none finished
    polls_in_window: int
    polls_per_s: float
    worker_cpu_ms_per_poll: float
    worker_cores: float
    other_cores: dict[str, float]  # simulator, redis in the window
    lateness_p50_s: float  # steady window: a poll ran this much after its schedule
    lateness_p99_s: float
    lateness_ramp_p99_s: float  # polls before the window, while the creates went out
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    peak_rss_mb: dict[str, float]
    calls_per_step: float  # creates + polls per step of a completed job
    min_calls_per_step: float  # 1 create + ceil(duration / max interval) polls
    lags: list[float] = field(default_factory=list, repr=False)
    lateness_points: list[tuple[float, float]] = field(default_factory=list, repr=False)


def analyse_step(
    *,
    docs: list[dict[str, Any]],
    ledger: dict[str, Any],
    tasks: dict[str, dict[str, Any]],
    meter: Meter,
    workers: Sequence[str],
    others: Sequence[str],
    t_start: float,
    t_end: float,
    poll_min_s: float = 5.0,
    poll_max_s: float = 10.0,
    poll_factor: float = 1.5,
    poll_jitter: float = 0.1,
) -> StepStats:
    ids = [s["remote_id"] for d in docs for s in steps_of(d) if s.get("remote_id")]
    created = sorted(float(tasks[i]["created_at"]) for i in ids if i in tasks)
    finished = sorted(float(tasks[i]["finished_at"]) for i in ids if i in tasks)
    polls = {i: sorted(ledger["polls"].get(i, [])) for i in ids}
    w0 = (created[-1] if created else t_start) + 1.0
    w1 = (finished[0] if finished else t_end) - 0.5
    if w1 - w0 < 3.0:  # no steady window (tiny runs): use the whole run
        w0, w1 = t_start, t_end
    in_window = sum(1 for times in polls.values() for t in times if w0 <= t <= w1)
    cpu_s = meter.cpu_between(workers, w0, w1)
    schedule = scheduled_intervals(poll_min_s, poll_max_s, poll_factor, poll_jitter)
    points: list[tuple[float, float]] = []  # (poll time, lateness)
    for i, times in polls.items():
        previous = float(tasks[i]["created_at"]) if i in tasks else None
        for k, t in enumerate(times):
            if previous is not None:
                late = max(0.0, t - previous - schedule[min(k, len(schedule) - 1)])
                points.append((t, late))
            previous = t
    lateness = [late for t, late in points if w0 <= t <= w1]
    ramp = [late for t, late in points if t < w0]
    lags = detection_lags(docs, tasks)
    calls, minimum = [], []
    for d in docs:
        for s in steps_of(d):
            task = tasks.get(s.get("remote_id") or "")
            if s.get("state") == "completed" and task:
                duration = float(task["finished_at"]) - float(task["created_at"])
                calls.append(1 + len(polls.get(task["id"], [])))
                minimum.append(1 + max(1, math.ceil(duration / poll_max_s)))
    states: dict[str, int] = {}
    for d in docs:
        states[d["state"]] = states.get(d["state"], 0) + 1
    window = max(w1 - w0, 1e-9)
    return StepStats(
        jobs=len(docs),
        states=states,
        create_span_s=(created[-1] - created[0]) if created else 0.0,
        window_s=window,
        polls_in_window=in_window,
        polls_per_s=in_window / window,
        worker_cpu_ms_per_poll=cpu_s * 1000 / in_window if in_window else float("nan"),
        worker_cores=cpu_s / window,
        other_cores={n: meter.cpu_between([n], w0, w1) / window for n in others},
        lateness_p50_s=percentile(lateness, 50),
        lateness_p99_s=percentile(lateness, 99),
        lateness_ramp_p99_s=percentile(ramp, 99),
        lag_p50_s=percentile(lags, 50),
        lag_p99_s=percentile(lags, 99),
        lag_max_s=max(lags, default=float("nan")),
        peak_rss_mb={
            n: max((s.rss.get(n, 0) for s in meter.samples if t_start <= s.t <= t_end), default=0)
            / MB
            for n in workers
        },
        calls_per_step=statistics.fmean(calls) if calls else float("nan"),
        min_calls_per_step=statistics.fmean(minimum) if minimum else float("nan"),
        lags=lags,
        lateness_points=[(t - t_start, late) for t, late in points],
    )


def run_batch(
    stack: LocalStack,
    services: Any,
    meter: Meter,
    rows: list[dict[str, Any]],
    batch: str,
    *,
    timeout_s: float,
    workers: Sequence[str] | None = None,
    others: Sequence[str] = ("simulator", "redis"),
    allow_unfinished: bool = False,
    **schedule: float,
) -> StepStats:
    """Submit ``rows``, wait for all of them, and analyse the run.

    With ``allow_unfinished``, jobs still open after ``timeout_s`` are reported in
    the states (and the run analysed) instead of raising.
    """
    assert stack.admin is not None
    t_start = time.time()
    submit(services, rows, batch)
    try:
        wait_finished(services, batch, timeout_s)
    except TimeoutError as exc:
        if not allow_unfinished:
            raise
        print(f"WARNING: {exc}", flush=True)
    t_end = time.time()
    time.sleep(SAMPLE_EVERY_S * 2)  # one more sample after the end
    docs = job_docs(services, batch)
    ledger = stack.admin.ledger()
    ids = [s["remote_id"] for d in docs for s in steps_of(d) if s.get("remote_id")]
    tasks = sim_tasks(stack.admin, ids)
    return analyse_step(
        docs=docs,
        ledger=ledger,
        tasks=tasks,
        meter=meter,
        workers=list(workers or worker_pids(stack)),
        others=others,
        t_start=t_start,
        t_end=t_end,
        **schedule,
    )


def keep_problems(process: ManagedProcess, name: str) -> int:
    """Copy a child's WARNING/ERROR lines (and tracebacks) to bench/out/<name>.log."""
    lines = []
    try:
        with open(process.log_path, errors="replace") as log:
            keep = False
            for line in log:
                if " WARNING " in line or " ERROR " in line or " CRITICAL " in line:
                    keep = True
                elif line[:4].isdigit():  # the next timestamped line ends a traceback
                    keep = False
                if keep:
                    lines.append(line)
    except FileNotFoundError:
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.log").write_text("".join(lines[-2000:]))
    return len(lines)


def system_pids(stack: LocalStack) -> dict[str, int]:
    """The simulator's and Redis' pids, for the meter."""
    pids: dict[str, int] = {}
    if stack.simulator is not None and stack.simulator.pid is not None:
        pids["simulator"] = stack.simulator.pid
    if stack.redis_server is not None and stack.redis_server.pid is not None:
        pids["redis"] = stack.redis_server.pid
    return pids
