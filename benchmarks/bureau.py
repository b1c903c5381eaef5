"""Figure "bureau": N organisations x M rows on the Redis job queue with 1, 2 and 4 workers.

Each organisation has its own token, and the simulator (``simproc``, a fresh one per case)
limits each token to ``RATE`` writes per second, so one organisation's job takes about
M / RATE seconds however many workers there are: the ideal for the bureau is the slowest
organisation alone. Each case starts W real ``flexpay-batch worker`` processes (one job at a
time each), waits until they are up, runs ``flexpay-batch enqueue MANIFEST`` and takes the
time from the first job queued to the last done (saq's own times in Redis; the best of the
size's rounds). The ideal is the same measurement for one organisation with one worker (at
the smoke size, which only keeps the figure running, the longest job of the one case).
Expected: total / ideal ≈ ceil(N / W) (a worker runs one job at a time), so ≈ 1 once
W ≥ N; what is above that is the queue's own cost (dequeue, heartbeat, lease, start-up of a
job in a worker).

Needs ``redis-server`` on the PATH (started here on a free loopback port, nothing on disk).
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from flexpay_batch.bureau.queue import QUEUE_NAME
from flexpay_batch.sim import SimConfig, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES

from .common import Check, FigureResult, Suite, cli_env, fmt, limits
from .data import write_onboarding_csv
from .plots import bar_figure
from .redisproc import RedisProcess

#: (organisations, rows per organisation) at each size.
SIZES = {"smoke": (2, 10), "quick": (4, 100), "full": (4, 400)}
#: Workers per case; the smoke size (run by the test suite) keeps to one case.
WORKER_COUNTS = {"smoke": (2,), "quick": (1, 2, 4), "full": (1, 2, 4)}
#: Writes per second each organisation's token is allowed, and its burst.
RATE = 25.0
BURST = 5
#: Seconds allowed for one case, and for the workers to come up.
CASE_TIMEOUT = 600.0
READY_TIMEOUT = 60.0
JOB_PREFIX = f"saq:job:{QUEUE_NAME}:"
CLI = (sys.executable, "-m", "flexpay_batch")


def _manifest(suite: Suite, name: str, orgs: list[str], rows: int) -> Path:
    tables = []
    for org in orgs:
        source = write_onboarding_csv(suite.workdir / f"{name}-{org}.csv", rows)
        tables.append(
            f'[[jobs]]\norg = "{org}"\nkind = "onboard"\nfile = "{source}"\n'
            f'token_env = "FLEXPAY_TOKEN_{org.upper()}"\nwrite_limit = "{RATE:g}/s"\n'
            f'write_burst = {BURST}\nread_limit = "{RATE:g}/s"\nread_burst = {BURST}\n'
        )
    path = suite.workdir / f"{name}.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def _records(url: str) -> list[dict[str, object]]:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=JOB_PREFIX + "*"))
        return [json.loads(value) for value in client.mget(keys) if value] if keys else []
    finally:
        client.close()


def _span(url: str, count: int) -> tuple[float, float] | None:
    """Once all ``count`` jobs are done (saq's own times, seconds): from the first queued to
    the last done, and the longest one job took from queued to done; None before."""
    records = _records(url)
    failed = [r for r in records if r.get("status") in ("failed", "aborted")]
    if failed:
        raise RuntimeError(f"a bureau job failed: {failed[0].get('result')}")
    done = [r for r in records if r.get("status") == "complete"]
    if len(done) < count:
        return None
    queued = [float(str(r["queued"])) for r in done]
    completed = [float(str(r["completed"])) for r in done]
    longest = max(end - start for start, end in zip(queued, completed, strict=True))
    return (max(completed) - min(queued)) / 1000, longest / 1000


def _wait_ready(url: str, workers: int) -> None:
    """Return once ``workers`` clients block on the queue (saq's dequeue is a BLMOVE)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            clients = client.client_list()
            if sum(1 for c in clients if c.get("cmd") == "blmove") >= workers:
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError(f"{workers} workers were not up within {READY_TIMEOUT:.0f} s")


def _run_case(
    suite: Suite, server: RedisProcess, orgs: int, rows: int, workers: int
) -> tuple[float, float]:
    """(seconds from the first job queued to the last done, the longest job's own seconds)
    for ``orgs`` organisations on ``workers`` (the enqueuing command's start-up not counted)."""
    names = [f"org{n}" for n in range(1, orgs + 1)]
    tokens = {name: f"fps_{name}_{secrets.token_hex(12)}" for name in names}
    specs = tuple(TokenSpec(tokens[n], ALL_SCOPES, f"org_{n}", name=n) for n in names)
    # ``simproc`` hands back the token named "admin": one more, of no organisation here.
    specs += (TokenSpec(secrets.token_hex(16), ALL_SCOPES, "org_admin", name="admin"),)
    redis.Redis.from_url(server.url).flushall()
    case = f"bureau-{orgs}x{rows}-w{workers}"
    manifest = _manifest(suite, case, names, rows)
    config = SimConfig(tokens=specs, limits=limits(RATE, BURST))
    with suite.server.running(config) as sim:
        env = cli_env(sim, token=False)
        env |= {f"FLEXPAY_TOKEN_{n.upper()}": token for n, token in tokens.items()}
        env["FLEXPAY_KEY_SECRET"] = secrets.token_hex(24)
        procs = [
            subprocess.Popen(
                [*CLI, "worker", "--queue", server.url, "--concurrency", "1"],
                env={**env, "FLEXPAY_STATE_DIR": str(suite.run_dir(f"{case}-{n}"))},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(workers)
        ]
        try:
            _wait_ready(server.url, workers)
            started = time.monotonic()
            subprocess.run(
                [*CLI, "enqueue", str(manifest), "--queue", server.url],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
            while (span := _span(server.url, orgs)) is None:
                if time.monotonic() - started > CASE_TIMEOUT:
                    raise RuntimeError(f"{case} did not finish in {CASE_TIMEOUT:.0f} s")
                time.sleep(0.05)
            return span
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)


def figure_bureau(suite: Suite) -> FigureResult:
    """Total time of N organisations on 1, 2 and 4 workers against one organisation alone."""
    orgs, rows = SIZES.get(suite.scale.name, SIZES["full"])
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the bureau figure needs redis-server on the PATH")
    server = RedisProcess.launch(binary)
    try:
        repeats = range(suite.scale.rounds)
        counts = WORKER_COUNTS.get(suite.scale.name, WORKER_COUNTS["full"])
        cases = {w: min(_run_case(suite, server, orgs, rows, w) for _ in repeats) for w in counts}
        totals = {w: span for w, (span, _) in cases.items()}
        if suite.scale.name == "smoke":
            # One case only (the test suite runs it): its longest job stands in for the ideal.
            ideal = cases[max(counts)][1]
        else:
            ideal = min(_run_case(suite, server, 1, rows, 1)[0] for _ in repeats)
    finally:
        server.stop()
    rows_table = []
    checks = []
    for workers, total in totals.items():
        rounds = math.ceil(orgs / workers)
        ratio = total / ideal
        rows_table.append([str(workers), fmt(total, 2), fmt(ideal, 2), fmt(ratio, 2), str(rounds)])
        checks.append(
            Check(
                f"{orgs} organisations on {workers} workers: total / ideal",
                fmt(ratio, 2),
                f"≤ {rounds * 1.25:.2f} (ceil(N/W) = {rounds}, +25%)",
                ratio <= rounds * 1.25,
            )
        )
    plot = bar_figure(
        suite.out_dir / "fig8_bureau.png",
        f"{orgs} organisations x {rows} rows at {RATE:g} writes/s per token",
        {
            "total seconds (ideal: one organisation alone)": {
                "ideal": ideal,
                **{f"{w} worker{'s' if w > 1 else ''}": t for w, t in totals.items()},
            },
            "total / ideal (expected ceil(N/W))": {f"{w}w": t / ideal for w, t in totals.items()},
        },
        "",
    )
    return FigureResult(
        key="bureau",
        title="8. A bureau on the job queue: N organisations on 1, 2 and 4 workers",
        method=__doc__ or "",
        header=["workers", "total s", "ideal s", "total / ideal", "ceil(N / W)"],
        rows=rows_table,
        checks=checks,
        plots=[plot.name],
        data={
            "organisations": orgs,
            "rows": rows,
            "rate": RATE,
            "ideal_seconds": ideal,
            "total_seconds": {str(w): t for w, t in totals.items()},
        },
    )
