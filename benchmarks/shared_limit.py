"""Figure "shared": K processes on one token, with and without the shared store (Redis).

Each case starts K real ``flexpay-batch onboard`` processes on disjoint slices of the same
rows against one fresh simulator (``simproc``) enforcing one token's write limit; every
process is configured with the true limit. Utilisation is server side (``common.utilisation``
over all admitted writes), 429s are the admissions the server refused. The store's own cost
is the mean time of one ``acquire`` on a bucket that never makes it wait.

Needs ``redis-server`` on the PATH (started here on a free loopback port, nothing on disk).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flexpay_batch.api.ratelimit.aimd import AimdState
from flexpay_batch.api.ratelimit.inprocess import InProcessStore
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.api.ratelimit.store import BucketSpec, LimiterStore
from flexpay_batch.sim import SimConfig

from .common import Check, FigureResult, Suite, fmt, limits, utilisation
from .data import write_onboarding_csv
from .plots import bar_figure
from .redisproc import RedisProcess

#: Processes per case at each size (the smoke size keeps the suite's test short).
PROCESS_COUNTS = {"smoke": (2,), "quick": (1, 2, 4, 8), "full": (1, 2, 4, 8)}
#: Acquisitions timed for the cost of one.
ACQUIRES = 2000


def _run_case(suite: Suite, processes: int, limiter_url: str | None) -> tuple[float, int]:
    """(utilisation, 429s) of ``processes`` CLI processes sharing one token."""
    s = suite.scale
    rows = s.limit_rows - s.limit_rows % processes
    config = SimConfig(limits=limits(s.rate, s.burst))
    with suite.server.running(config) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXPAY_")}
        env |= {
            "FLEXPAY_BASE_URL": sim.base_url,
            "FLEXPAY_CA_BUNDLE": str(sim.ca_path),
            "FLEXPAY_TOKEN": sim.token,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        if limiter_url is not None:
            env["FLEXPAY_LIMITER_URL"] = limiter_url
        procs = []
        for index in range(processes):
            source = suite.workdir / f"shared-{processes}-{limiter_url is not None}-{index}.csv"
            per_process = rows // processes
            write_onboarding_csv(source, per_process, first=index * per_process)
            rate = f"{s.rate:g}/s"
            args = ["onboard", str(source), "--run-dir", str(suite.run_dir("shared"))]
            args += ["--write-limit", rate, "--write-burst", str(s.burst)]
            args += ["--read-limit", rate, "--read-burst", str(s.burst)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flexpay_batch", *args],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for proc in procs:
            proc.wait(timeout=600)
    admitted = sim.report.admitted_times("write")
    _, _, ratio = utilisation(admitted, s.burst, s.rate)
    return ratio, len(sim.report.refused_times("write"))


async def _acquire_cost(store: LimiterStore) -> float:
    """Mean seconds per ``acquire`` on a bucket that never waits."""
    store.register("bench:write", BucketSpec(1e9, 1e9), AimdState.initial(1e9))
    await store.acquire("bench:write")
    started = time.perf_counter()
    for _ in range(ACQUIRES):
        await store.acquire("bench:write")
    return (time.perf_counter() - started) / ACQUIRES


async def _costs(url: str) -> dict[str, float]:
    redis_store = await RedisStore.connect(url)
    try:
        return {
            "in-process": await _acquire_cost(InProcessStore()),
            "Redis (loopback)": await _acquire_cost(redis_store),
        }
    finally:
        await redis_store.aclose()


def figure_shared(suite: Suite) -> FigureResult:
    """Utilisation and 429s for K processes on one token, in-process limiter vs Redis."""
    counts = PROCESS_COUNTS.get(suite.scale.name, (1, 2, 4, 8))
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the shared-store figure needs redis-server on the PATH")
    redis = RedisProcess.launch(binary)
    try:
        results = {
            (k, shared): _run_case(suite, k, redis.url if shared else None)
            for shared in (False, True)
            for k in counts
        }
        costs = asyncio.run(_costs(redis.url))
    finally:
        redis.stop()
    rows = [
        [
            str(k),
            fmt(results[k, False][0]),
            str(results[k, False][1]),
            fmt(results[k, True][0]),
            str(results[k, True][1]),
        ]
        for k in counts
    ]
    checks = [
        Check(f"K={k} sharing Redis: utilisation, 429s", f"{fmt(u)}, {n}", "≥ 0.95, 0", None)
        for k in counts
        for u, n in [results[k, True]]
    ]
    for check, k in zip(checks, counts, strict=True):
        u, n = results[k, True]
        check.passed = u >= 0.95 and n == 0
    checks += [
        Check(f"one acquire, {name}", f"{seconds * 1e6:.0f} µs", "", None)
        for name, seconds in costs.items()
    ]
    plot = bar_figure(
        suite.out_dir / "shared_limit.png",
        f"K processes on one token at {suite.scale.rate:g}/s, burst {suite.scale.burst}: "
        "KL in-process limiter, KR shared Redis",
        {
            "utilisation (ideal / actual)": {
                f"{k}{'R' if shared else 'L'}": results[k, shared][0]
                for shared in (False, True)
                for k in counts
            },
            "429s": {
                f"{k}{'R' if shared else 'L'}": float(results[k, shared][1])
                for shared in (False, True)
                for k in counts
            },
        },
        "",
    )
    return FigureResult(
        key="shared",
        title="Several processes on one token: in-process limiter vs the shared Redis store",
        method=__doc__ or "",
        header=["K", "local: utilisation", "local: 429s", "Redis: utilisation", "Redis: 429s"],
        rows=rows,
        checks=checks,
        plots=[plot.name],
        data={
            "cases": [
                {"processes": k, "shared": shared, "utilisation": u, "throttled": n}
                for (k, shared), (u, n) in results.items()
            ],
            "acquire_seconds": costs,
        },
    )
