"""Smoke test of the benchmark suite: every figure runs at a tiny size and yields numbers.

No wall-clock assertions: the benchmarks measure speed, this only keeps them from rotting.
The suite runs once, as the real command (``python -m benchmarks --size smoke``) in a
subprocess, so its event loops and signal handlers never touch pytest's; the whole file takes
well under 30 seconds.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("utilisation", "alternatives", "overhead", "journal", "memory")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Run every figure once at the smoke size; return the output dir and results.json.

    Under xdist every worker that draws one of these tests would run the whole suite again (a
    minute of CPU each); so the first one runs it under a lock in the session's shared temp
    directory and the others, waiting on the lock, read its results.
    """
    base = tmp_path_factory.getbasetemp()
    # Workers' temp dirs (popen-gwN) share the session's; without xdist the session's is ours.
    session = base.parent if base.name.startswith("popen-gw") else base
    out = session / "bench-smoke"
    with (session / "bench-smoke.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "results.json").exists():
            _run_benchmarks(out)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return out, results


def _run_benchmarks(out: Path) -> None:
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "smoke", "--out", str(out)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    # Exit 1 with a report is a missed speed target (a verdict this test makes no claim on);
    # a crash would leave a traceback.
    assert done.returncode in (0, 1), done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]


@pytest.mark.parametrize("name", FIGURES)
def test_figure_reports_numbers(name: str, smoke_run: tuple[Path, dict[str, Any]]) -> None:
    """The figure ran: its checks hold finite numbers and its report section and PNG exist."""
    out, results = smoke_run
    (figure,) = [f for f in results["figures"] if f["key"] == name]
    assert figure["checks"]
    for check in figure["checks"]:
        numbers = [float(x) for x in NUMBER.findall(check["value"])]
        assert numbers, check
        assert all(math.isfinite(x) for x in numbers), check
    assert f"## {figure['title']}" in (out / "report.md").read_text(encoding="utf-8")
    assert list(out.glob("*.png"))
