"""Figure "shared": K processes on one token, with and without the shared store (Redis).

Each case starts K real ``flexpay-batch onboard`` processes on disjoint slices of the same
rows against one fresh simulator (``simproc``) enforcing one token's write limit; every
process is configured with the true limit. The processes are started through
``benchmarks.gatedcli``: each imports the CLI, says it is ready, and all are told to go at
the same moment, so interpreter start-up (a second of CPU each) is not inside the runs.
Everything is measured server side, on the simulator's admissions of writes
(``time.monotonic``, the same clock for every process on the host).

**Utilisation** is what the server admitted while all K processes were sending, over what it
would have admitted:

- each process's sending span runs from the creation of its first row to that of its last
  (the simulator records who created what, by ``external_id``);
- the window W runs from the latest first row to the earliest last row: every process had
  started and none had finished;
- utilisation = admissions in W / (tokens the server's bucket held at W's start + limit x
  |W|), the bucket replayed from the admissions (full before the first). 1.0 is a perfect
  client; ours holds back ``jitter_margin`` tokens (5 of a burst of 20 at 100/s), which
  costs 5 / (limit x |W|) of it. No window (the spans never overlapped) reads "—".

"whole run" is the older figure, for comparison: the ideal time of all admissions (a burst,
then the rate) over first to last admission, the start-up stagger and the lone tail of
whoever finishes last included. 429s are the admissions the server refused. The remaining
columns explain cases where the processes cannot keep up: seconds from spawn to ready
(interpreter and imports), from "go" to the first row created, and per process its CPU
seconds (``wait4`` rusage) and the seconds it was runnable but waiting for a core
(``/proc/PID/schedstat``, read before it is reaped), and the same for the one redis-server
every process's grants go through, over the case. The store's own cost is the mean time of
one ``acquire`` on a bucket that never makes it wait. Last, one process's share of a 400/s
bucket with 8 requests always waiting, through a Redis 5 ms further away (each round trip
delayed): what one grant per round trip would cap at under half.

Needs ``redis-server`` on the PATH (started here on a free loopback port, nothing on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from flexpay_batch.api.ratelimit.aimd import AimdState
from flexpay_batch.api.ratelimit.inprocess import InProcessStore
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.api.ratelimit.store import BucketSpec, LimiterStore
from flexpay_batch.sim import SimConfig

from .common import (
    Check,
    FigureResult,
    Suite,
    cli_env,
    fmt,
    limits,
    utilisation,
    window_utilisation,
)
from .data import write_onboarding_csv
from .plots import bar_figure
from .redisproc import RedisProcess

#: Processes per case at each size (the smoke size keeps the suite's test short).
PROCESS_COUNTS = {"smoke": (1, 2), "quick": (1, 2, 4, 8), "full": (1, 2, 4, 8)}
#: Acquisitions timed for the cost of one, at each size.
ACQUIRES = {"smoke": 200, "quick": 2000, "full": 2000}
#: Seconds a case's processes may take before the case is abandoned.
CASE_TIMEOUT = 600.0


@dataclass(frozen=True)
class ProcessFacts:
    """One client process: its exit code, span of rows created (server time), seconds from
    spawn to ready (interpreter and imports), start-up (go to first row created), CPU seconds
    and seconds runnable but waiting for a core (both over its whole life)."""

    code: int
    first: float
    last: float
    imports: float
    startup: float
    cpu: float
    runqueue_wait: float


@dataclass(frozen=True)
class CaseResult:
    """One case (K processes, shared store or not); see the module docstring."""

    processes: int
    shared: bool
    window_utilisation: float | None
    window_seconds: float
    whole_run: float
    throttled: int
    rows: int
    created: int
    facts: tuple[ProcessFacts, ...]
    store_wait: float = 0.0

    def data(self) -> dict[str, object]:
        return {
            "processes": self.processes,
            "shared": self.shared,
            "utilisation": self.window_utilisation,
            "window_seconds": self.window_seconds,
            "whole_run_utilisation": self.whole_run,
            "throttled": self.throttled,
            "rows": self.rows,
            "redis_waiting_for_a_core": self.store_wait,
            "created": self.created,
            "per_process": [vars(fact) for fact in self.facts],
        }


def _runqueue_wait(pid: int | None) -> float:
    """Seconds process ``pid`` has so far been runnable but waiting for a core (0 if unknown)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    return 0.0


def _wait_ready(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``gatedcli``'s "ready" line; return the monotonic time it came."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"a client process failed to start (said {line[:200]!r})")
    proc.stdout.close()
    return time.monotonic()


def _reap(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, float, float]:
    """Wait for ``proc`` (killed at monotonic ``deadline``); (exit code, CPU seconds, seconds
    runnable but waiting for a core).

    The run-queue wait is read from ``/proc`` while the process is a zombie (``WNOWAIT``),
    the CPU time from the rusage of reaping it."""
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.01)
    wait_ns = 0  # no schedstat (not Linux, or disabled): the column reads 0
    with contextlib.suppress(OSError, IndexError, ValueError):
        wait_ns = int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[1])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, wait_ns / 1e9


def _run_case(suite: Suite, processes: int, limiter_url: str | None) -> CaseResult:
    """Run ``processes`` CLI processes sharing one token; measure as the docstring says."""
    s = suite.scale
    rows = s.limit_rows - s.limit_rows % processes
    per_process = rows // processes
    config = SimConfig(limits=limits(s.rate, s.burst))
    with suite.server.running(config) as sim:
        env = cli_env(sim)
        if limiter_url is not None:
            env["FLEXPAY_LIMITER_URL"] = limiter_url
        sources = []
        for index in range(processes):
            source = suite.workdir / f"shared-{processes}-{limiter_url is not None}-{index}.csv"
            sources.append(write_onboarding_csv(source, per_process, first=index * per_process))
        rate = f"{s.rate:g}/s"
        procs, spawned = [], []
        for source in sources:
            args = ["onboard", str(source), "--run-dir", str(suite.run_dir("shared"))]
            args += ["--write-limit", rate, "--write-burst", str(s.burst)]
            args += ["--read-limit", rate, "--read-burst", str(s.burst)]
            spawned.append(time.monotonic())
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.gatedcli", *args],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            )
        imports = [_wait_ready(proc) - born for proc, born in zip(procs, spawned, strict=True)]
        released = time.monotonic()
        for proc in procs:  # all at once: the runs start together
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        deadline = time.monotonic() + CASE_TIMEOUT
        reaped = [_reap(proc, deadline) for proc in procs]
    created: list[list[float]] = [[] for _ in range(processes)]
    for at, external_id in sim.report.created:
        created[int(external_id[1:]) // per_process].append(at)
    facts = tuple(
        ProcessFacts(
            code=code,
            first=min(times, default=0.0),
            last=max(times, default=0.0),
            imports=imported,
            startup=min(times, default=released) - released,
            cpu=cpu,
            runqueue_wait=waited,
        )
        for times, imported, (code, cpu, waited) in zip(created, imports, reaped, strict=True)
    )
    admitted = sim.report.admitted_times("write")
    in_window, seconds = window_utilisation(
        admitted, [(f.first, f.last) for f in facts], s.burst, s.rate
    )
    _, _, whole = utilisation(admitted, s.burst, s.rate)
    return CaseResult(
        processes=processes,
        shared=limiter_url is not None,
        window_utilisation=in_window,
        window_seconds=seconds,
        whole_run=whole,
        throttled=len(sim.report.refused_times("write")),
        rows=rows,
        created=sim.report.employees_created,
        facts=facts,
    )


async def _acquire_cost(store: LimiterStore, times: int) -> float:
    """Mean seconds per ``acquire`` on a bucket that never waits, one at a time."""
    store.register("bench:write", BucketSpec(1e9, 1e9), AimdState.initial(1e9))
    await store.acquire("bench:write")
    started = time.perf_counter()
    for _ in range(times):
        await store.acquire("bench:write")
    return (time.perf_counter() - started) / times


async def _costs(url: str, times: int) -> dict[str, float]:
    redis_store = await RedisStore.connect(url)
    try:
        return {
            "in-process": await _acquire_cost(InProcessStore(), times),
            "Redis (loopback)": await _acquire_cost(redis_store, times),
        }
    finally:
        await redis_store.aclose()


#: One process's grant rate through a Redis with a slower round trip (another host, or a
#: loaded one): added seconds per round trip, the bucket's rate, waiters.
REMOTE_DELAY, REMOTE_RATE, REMOTE_WAITERS = 0.005, 400.0, 8
#: Seconds that process is measured for, at each size.
REMOTE_SECONDS = {"smoke": 0.25, "quick": 1.0, "full": 2.0}


class _DistantStore(RedisStore):
    """A ``RedisStore`` whose every round trip takes ``REMOTE_DELAY`` seconds longer."""

    async def _eval(self, redis_key: str, argv: list[str]) -> list[Any]:
        await asyncio.sleep(REMOTE_DELAY)
        reply: list[Any] = await super()._eval(redis_key, argv)
        return reply


async def _distant_utilisation(url: str, seconds: float) -> float:
    """Grants per second of one process (``REMOTE_WAITERS`` waiting at all times) through
    ``_DistantStore``, over the bucket's rate: one grant per round trip would cap it at
    1 / (5 ms + loopback) = under 200/s of the 400/s."""
    store = await _DistantStore.connect(url, namespace="flexpay-bench-distant")
    spec = BucketSpec(20, REMOTE_RATE, initial_level=20)  # no burst: the rate from the start
    store.register("distant:write", spec, AimdState.initial(REMOTE_RATE))
    tickets: list[float] = []
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds

    async def waiter() -> None:
        while loop.time() < stop:
            tickets.append(await store.acquire("distant:write"))

    try:
        await asyncio.gather(*(waiter() for _ in range(REMOTE_WAITERS)))
    finally:
        await store.aclose()
    tickets.sort()
    # Grants come in batches sharing one ticket: count those after the first batch only.
    later = sum(1 for ticket in tickets if ticket > tickets[0])
    return later / (tickets[-1] - tickets[0]) / REMOTE_RATE


def _util(value: float | None) -> str:
    return "—" if value is None else fmt(value)


def _row(case: CaseResult) -> list[str]:
    facts = case.facts
    startups = [f.startup for f in facts]
    return [
        str(case.processes),
        "Redis" if case.shared else "in-process",
        _util(case.window_utilisation),
        f"{case.window_seconds:.2f}",
        fmt(case.whole_run),
        str(case.throttled),
        f"{max(f.imports for f in facts):.2f}",
        f"{min(startups):.2f}-{max(startups):.2f}",
        f"{mean(f.cpu for f in facts):.2f}",
        f"{mean(f.runqueue_wait for f in facts):.2f}",
        f"{case.store_wait:.2f}" if case.shared else "",
    ]


def figure_shared(suite: Suite) -> FigureResult:
    """Utilisation and 429s for K processes on one token, in-process limiter vs Redis."""
    counts = PROCESS_COUNTS.get(suite.scale.name, (1, 2, 4, 8))
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the shared-store figure needs redis-server on the PATH")
    redis = RedisProcess.launch(binary)
    try:
        cases = {}
        for shared in (False, True):
            for k in counts:
                before = _runqueue_wait(redis.pid)
                case = _run_case(suite, k, redis.url if shared else None)
                waited = _runqueue_wait(redis.pid) - before
                cases[k, shared] = dataclasses.replace(case, store_wait=waited)
        costs = asyncio.run(_costs(redis.url, ACQUIRES.get(suite.scale.name, 2000)))
        distant = asyncio.run(
            _distant_utilisation(redis.url, REMOTE_SECONDS.get(suite.scale.name, 1.0))
        )
    finally:
        redis.stop()
    checks = []
    for k in counts:
        case = cases[k, True]
        value = f"{_util(case.window_utilisation)}, {case.throttled}"
        passed = None
        # The target, for K = 2 and 4 (K = 1 shares nothing, K = 8 is CPU-bound on
        # two cores); at the smoke size the window is a fraction of a second: no verdict.
        if k in (2, 4) and suite.scale.name != "smoke":
            util = case.window_utilisation
            passed = util is not None and util >= 0.95 and case.throttled == 0
        checks.append(Check(f"K={k} sharing Redis: utilisation, 429s", value, "≥ 0.95, 0", passed))
    checks += [
        Check(f"one acquire, {name}", f"{seconds * 1e6:.0f} µs", "", None)
        for name, seconds in costs.items()
    ]
    checks.append(
        Check(
            f"one process, {REMOTE_WAITERS} waiters, Redis {REMOTE_DELAY * 1e3:g} ms further "
            f"away: share of {REMOTE_RATE:g}/s granted",
            fmt(distant),
            "≥ 0.95",
            distant >= 0.95,
        )
    )
    plot = bar_figure(
        suite.out_dir / "fig7_shared.png",
        f"K processes on one token at {suite.scale.rate:g}/s, burst {suite.scale.burst}: "
        "KL in-process limiter, KR shared Redis",
        {
            "utilisation while all K send": {
                f"{k}{'R' if shared else 'L'}": cases[k, shared].window_utilisation or 0.0
                for shared in (False, True)
                for k in counts
            },
            "429s": {
                f"{k}{'R' if shared else 'L'}": float(cases[k, shared].throttled)
                for shared in (False, True)
                for k in counts
            },
        },
        "",
    )
    return FigureResult(
        key="shared",
        title="7. Several processes on one token: in-process limiter vs the shared Redis store",
        method=__doc__ or "",
        header=[
            "K",
            "limiter",
            "utilisation (all sending)",
            "window s",
            "whole run",
            "429s",
            "imports s (max)",
            "start-up s (min-max)",
            "CPU s / process",
            "waiting for a core s / process",
            "redis-server waiting for a core s",
        ],
        rows=[_row(cases[k, shared]) for shared in (False, True) for k in counts],
        checks=checks,
        plots=[plot.name],
        data={
            "cases": [case.data() for case in cases.values()],
            "acquire_seconds": costs,
            "distant_utilisation": distant,
            "cores": os.cpu_count(),
        },
    )
