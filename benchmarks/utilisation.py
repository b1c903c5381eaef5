"""Figures 1 and 2: how close to the server's limit, and with how many 429s.

Every run onboards the same synthetic rows into a fresh simulator (``simproc``) whose writes
are limited to ``Scale.rate``/s with burst ``Scale.burst``. Utilisation is measured on the
server's side: ``ideal / actual`` where ideal is ``(N - burst) / real rate`` and actual is the
time from the first to the last *admitted* write (``common.utilisation``). 429s are the
admissions the server refused. End-to-end wall time of the whole client run is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flexpay_batch.sim import SimConfig

from .baselines import BaselineRun, run_baseline
from .common import Check, FigureResult, Suite, fmt, limits, utilisation
from .data import write_onboarding_csv
from .engine import EngineRun, run_engine
from .plots import RatePanel, Series, rate_figure


@dataclass(frozen=True)
class Case:
    """One server set-up; ``server_rate`` is what the server really enforces (per second)."""

    key: str
    label: str
    sim: SimConfig
    client_rate: float
    server_rate: float
    target: float
    zero_429: bool


@dataclass(frozen=True)
class ToolRun:
    """One tool over one case: server-side admission times, 429s, and the client's wall time."""

    tool: str
    case: str
    admitted: list[float]
    refused: list[float]
    created: int
    wall_seconds: float
    ideal: float
    actual: float
    ratio: float


def cases(suite: Suite) -> list[Case]:
    """Client configured to the server's limits; server stricter; stricter with bare 429s."""
    s = suite.scale
    advertised = limits(s.rate, s.burst)
    stricter = limits(s.stricter_rate, s.burst)
    return [
        Case(
            "matched",
            "1. client = server limits",
            SimConfig(limits=advertised),
            s.rate,
            s.rate,
            0.98,
            True,
        ),
        Case(
            "stricter",
            "2. server stricter than configured",
            SimConfig(limits=advertised, enforced_limits=stricter),
            s.rate,
            s.stricter_rate,
            0.90,
            False,
        ),
        Case(
            "bare429",
            "3. stricter, no rate-limit headers, bare 429s",
            SimConfig(limits=advertised, enforced_limits=stricter, rate_limit_headers=False),
            s.rate,
            s.stricter_rate,
            0.90,
            False,
        ),
    ]


def _rows_file(suite: Suite) -> Path:
    path = suite.cache.get("limit_csv")
    if path is None:
        path = write_onboarding_csv(suite.workdir / "limit-rows.csv", suite.scale.limit_rows)
        suite.cache["limit_csv"] = path
    return path


def measure(suite: Suite, case: Case, tool: str) -> ToolRun:
    """Run ``tool`` ("engine" or a ``baselines.BASELINES`` name) on ``case``; cached per run."""
    cache_key = f"util:{case.key}:{tool}"
    if cache_key in suite.cache:
        return suite.cache[cache_key]  # type: ignore[no-any-return]
    csv_path, s = _rows_file(suite), suite.scale
    with suite.server.running(case.sim) as sim:
        if tool == "engine":
            run_dir = suite.run_dir(f"util-{case.key}")
            result: EngineRun | BaselineRun = run_engine(
                csv_path, sim, run_dir, limits=limits(case.client_rate, s.burst), workers=s.workers
            )
        else:
            result = run_baseline(
                tool,
                csv_path,
                sim,
                rate=case.client_rate,
                burst=s.burst,
                workers=s.workers,
                pause=s.pause_429,
            )
        wall = result.wall_seconds
    admitted = sim.report.admitted_times("write")
    ideal, actual, ratio = utilisation(admitted, s.burst, case.server_rate)
    run = ToolRun(
        tool,
        case.key,
        admitted,
        sim.report.refused_times("write"),
        sim.report.employees_created,
        wall,
        ideal,
        actual,
        ratio,
    )
    suite.cache[cache_key] = run
    return run


def figure_utilisation(suite: Suite) -> FigureResult:
    """Figure 1: the engine in the three cases."""
    n = suite.scale.limit_rows
    rows, checks, panels = [], [], []
    for case in cases(suite):
        run = measure(suite, case, "engine")
        passed = run.ratio >= case.target and (not case.zero_429 or not run.refused)
        target = f"≥ {case.target:.2f}" + (" and 0 429s" if case.zero_429 else "")
        rows.append(
            [
                case.label,
                f"{case.server_rate:g}/s",
                f"{case.client_rate:g}/s",
                str(run.created),
                fmt(run.ideal, 2),
                fmt(run.actual, 2),
                fmt(run.ratio),
                str(len(run.refused)),
                fmt(run.wall_seconds, 2),
            ]
        )
        checks.append(
            Check(case.label, f"{run.ratio:.3f}, {len(run.refused)} 429s", target, passed)
        )
        panels.append(
            RatePanel(
                case.label,
                case.server_rate,
                [Series("engine", run.admitted, run.refused)],
                case.client_rate,
            )
        )
    plot = rate_figure(
        suite.out_dir / "fig1_utilisation.png", panels, f"Engine: admitted writes/s, {n} rows"
    )
    return FigureResult(
        key="utilisation",
        title="1. Limit utilisation",
        method=(
            f"The engine onboards {n} synthetic rows (`runner.run_job`, in process, "
            f"{suite.scale.workers} workers) into a fresh simulator in a child process. Write "
            f"limit {suite.scale.rate:g}/s, burst {suite.scale.burst}; in cases 2 and 3 the "
            f"server really enforces {suite.scale.stricter_rate:g}/s while the client is "
            f"configured for {suite.scale.rate:g}/s (case 2 still advertises "
            f"{suite.scale.rate:g}/s in its headers). Ideal = (N - burst) / the server's real "
            "rate; actual = first to last admitted write, on the server's clock."
        ),
        header=[
            "case",
            "server enforces",
            "client set to",
            "created",
            "ideal s",
            "actual s",
            "ideal/actual",
            "429s",
            "end-to-end s",
        ],
        rows=rows,
        checks=checks,
        plots=[plot.name],
    )


def figure_alternatives(suite: Suite) -> FigureResult:
    """Figure 2: the engine beside an aiolimiter script and aiometer, cases 1 and 2."""
    tools = ["engine", "aiolimiter script", "aiolimiter, bucket-sized", "aiometer"]
    rows, checks, panels = [], [], []
    for case in cases(suite)[:2]:
        runs = [measure(suite, case, tool) for tool in tools]
        for run in runs:
            rows.append(
                [
                    case.label,
                    run.tool,
                    str(run.created),
                    fmt(run.ratio),
                    str(len(run.refused)),
                    fmt(run.wall_seconds, 2),
                ]
            )
        engine, *others = runs
        for other in others:
            checks.append(_comparison(case, engine, other))
        panels.append(
            RatePanel(
                case.label,
                case.server_rate,
                [Series(r.tool, r.admitted, r.refused) for r in runs],
                case.client_rate,
            )
        )
    plot = rate_figure(
        suite.out_dir / "fig2_alternatives.png",
        panels,
        "Admitted writes/s: engine against what people use instead",
    )
    return FigureResult(
        key="alternatives",
        title="2. Against what people use instead",
        method=(
            "Same rows, same simulator set-up, same run, each tool against a fresh simulator. "
            f"`aiolimiter script` (naive): aiohttp + `AsyncLimiter({suite.scale.rate:g}, 1)` "
            f"around each request + a fixed `asyncio.sleep({suite.scale.pause_429:g})` on a 429, "
            "all rows "
            "`asyncio.gather`ed; its bucket holds a second of tokens, more than the server's "
            "burst. `aiolimiter, bucket-sized` (fair): the same script with "
            f"`AsyncLimiter({suite.scale.burst}, {suite.scale.burst}/{suite.scale.rate:g})`, the "
            "server's bucket exactly. "
            f"`aiometer`: `aiometer.run_all(max_at_once={suite.scale.workers}, "
            f"max_per_second={suite.scale.rate:g})` with the same sleep-and-retry on a 429. "
            f"All use {suite.scale.workers} connections and the server-side measure of "
            "figure 1."
        ),
        header=["case", "tool", "created", "ideal/actual", "429s", "end-to-end s"],
        rows=rows,
        checks=checks,
        plots=[plot.name],
    )


def _comparison(case: Case, engine: ToolRun, other: ToolRun) -> Check:
    """Engine beside one tool; issue 6 sets no target here, so the verdict is "n/a"."""
    return Check(
        f"{case.label}: engine vs {other.tool}",
        f"{engine.ratio:.3f} / {len(engine.refused)} 429s vs "
        f"{other.ratio:.3f} / {len(other.refused)} 429s",
        "none (side by side)",
        None,
    )
