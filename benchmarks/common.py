"""What every figure shares: the sizes, the suite's context, results and the rate arithmetic."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import tempfile
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate

from .simproc import RunningSim, SimProcess

#: The repository: the CLI subprocesses import flexpay_batch from here.
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    """How big each benchmark is. Rates are requests per second; sizes are rows."""

    name: str
    limit_rows: int  # figures 1-2: rows per onboarding run
    overhead_rows: int  # figures 3-4: rows per run with limits off
    memory_rows: int  # figure 5: rows in the validated file
    onboard_rows: int  # figure 5: rows of the onboard run whose peak memory is measured
    rounds: int  # figures 3-4: alternating A/B rounds, best of them reported
    rate: float = 100.0
    burst: int = 20
    stricter_rate: float = 70.0
    workers: int = 8
    #: Seconds the retrying baselines sleep after a 429 (the common pattern's one second).
    pause_429: float = 1.0

    def faster(self, factor: float) -> Scale:
        """The same runs on a clock ``factor`` times faster: rates up, the 429 pause down."""
        return dataclasses.replace(
            self,
            rate=self.rate * factor,
            stricter_rate=self.stricter_rate * factor,
            pause_429=self.pause_429 / factor,
        )


FULL = Scale(
    "full",
    limit_rows=1500,
    overhead_rows=20_000,
    memory_rows=1_000_000,
    onboard_rows=100_000,
    rounds=2,
)
QUICK = Scale(
    "quick",
    limit_rows=300,
    overhead_rows=2_000,
    memory_rows=100_000,
    onboard_rows=5_000,
    rounds=1,
)
#: Seconds, not figures: every code path runs once, on a clock four times faster.
SMOKE = Scale(
    "smoke", limit_rows=30, overhead_rows=100, memory_rows=1_000, onboard_rows=100, rounds=1
).faster(4)


def limits(rate: float, burst: int) -> LimitSettings:
    """The same limits for reads and writes: ``rate`` per second, burst ``burst``."""
    per_class = ClassLimits(Rate(rate, 1.0), burst)
    return LimitSettings(read=per_class, write=per_class)


#: Limits so high the client never waits (figures 3 and 4).
LIMITS_OFF = limits(1e9, 1_000_000_000)


@dataclass
class Check:
    """One measured number against its target; ``passed`` is None when there is no target."""

    label: str
    value: str
    target: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "**miss**", None: "n/a"}[self.passed]


@dataclass
class FigureResult:
    """A figure of the report: a table, the checks, plot file names, notes (Markdown)."""

    key: str
    title: str
    method: str
    header: list[str]
    rows: list[list[str]]
    checks: list[Check] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """The context one invocation of the suite shares between figures."""

    scale: Scale
    server: SimProcess
    workdir: Path
    out_dir: Path
    cache: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, name: str) -> Path:
        """A fresh, empty run directory for the engine (a temp dir, removed with the suite)."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))


def cli_env(sim: RunningSim, *, token: bool = True) -> dict[str, str]:
    """The environment of a CLI subprocess against ``sim``: this process's without any
    ``FLEXPAY_`` variable, then the simulator's base URL and CA bundle, its token (unless
    ``token`` is false: the caller names its own) and the repository on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXPAY_")}
    env |= {
        "FLEXPAY_BASE_URL": sim.base_url,
        "FLEXPAY_CA_BUNDLE": str(sim.ca_path),
        "PYTHONPATH": str(ROOT),
    }
    if token:
        env["FLEXPAY_TOKEN"] = sim.token
    return env


def utilisation(admitted: list[float], burst: int, rate: float) -> tuple[float, float, float]:
    """(ideal seconds, actual seconds, ideal / actual) for sorted admission times.

    Ideal is ``(n - burst) / rate``: the burst goes at once, the rest at the sustained rate, so
    the last of ``n`` requests starts that long after the first. Actual is last minus first.
    """
    if len(admitted) <= burst + 1:
        return 0.0, 0.0, 0.0
    ideal = (len(admitted) - burst) / rate
    actual = admitted[-1] - admitted[0]
    return ideal, actual, ideal / actual if actual > 0 else 0.0


def tokens_before(admitted: list[float], at: float, burst: int, rate: float) -> float:
    """Tokens the server's bucket (full before the first admission) held just before ``at``,
    replaying the sorted ``admitted`` times through it."""
    tokens, last = float(burst), admitted[0] if admitted else at
    for t in admitted:
        if t >= at:
            break
        tokens = min(float(burst), tokens + (t - last) * rate) - 1.0
        last = t
    return min(float(burst), tokens + max(0.0, at - last) * rate)


def window_utilisation(
    admitted: list[float], spans: list[tuple[float, float]], burst: int, rate: float
) -> tuple[float | None, float]:
    """(utilisation, window seconds) while K processes were all sending (``shared_limit``).

    ``spans`` are each process's (first, last) row created; the window runs from the latest
    first to the earliest last. Utilisation is the admissions in it over what the server
    would have admitted: the tokens its bucket held at the window's start plus the rate
    times its length. ``(None, 0.0)`` when the spans never all overlap; ``admitted`` sorted.
    """
    if not spans or not admitted:
        return None, 0.0
    start = max(first for first, _ in spans)
    end = min(last for _, last in spans)
    if end <= start:
        return None, 0.0
    count = bisect_right(admitted, end) - bisect_left(admitted, start)
    allowed = tokens_before(admitted, start, burst, rate) + (end - start) * rate
    return count / allowed, end - start


def per_second_bins(times: list[float], start: float, width: float = 0.25) -> list[float]:
    """Events per second in consecutive bins of ``width`` seconds from ``start``."""
    if not times:
        return []
    count = int((times[-1] - start) / width) + 1
    bins = [0] * count
    for t in times:
        index = int((t - start) / width)
        if 0 <= index < count:
            bins[index] += 1
    return [n / width for n in bins]


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def machine() -> dict[str, str]:
    """The facts about this machine and checkout the report states."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start (1, 5, 15 min)": load,
        "commit": _commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head or "unknown"
