"""Smoke test of the benchmark suite: every figure runs at a tiny size and yields numbers.

No wall-clock assertions: the benchmarks measure speed, this only keeps them from rotting.
The suite runs once, as the real command (``python -m benchmarks --size smoke``) in a
subprocess: its simulator child is a ``multiprocessing`` spawn, which re-imports the parent's
``__main__`` (a pytest worker's would not do), and its event loops and signal handlers never
touch pytest's. The smoke size scales time down (rates four times higher, the
baselines' 429 pause a quarter second, one round): the file takes about ten CPU seconds.
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

from tests.redisserver import require_redis_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: The figures the smoke run makes; the shared-store one needs redis-server (``.ci/run``
#: installs it; without it the smoke run is skipped locally and fails under CI).
FIGURES = ("utilisation", "alternatives", "overhead", "journal", "memory", "startup", "shared")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Run every figure once at the smoke size; return the output dir and results.json.

    One test uses it (``test_every_figure_reports_numbers``), so under xdist exactly one worker
    runs the suite while the others go on with other tests; a lock in the session's shared
    temp directory still keeps a second run from starting should another test ask for it.
    """
    require_redis_server()  # the shared figure starts one (skip locally, fail in CI without)
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
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--size",
            "smoke",
            "--out",
            str(out),
            *(f"--only={name}" for name in FIGURES),
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    # Exit 0 whenever the suite ran: a missed speed target is a verdict in the report (this
    # test makes no claim on it); a crash would leave a traceback and exit 1.
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]


def test_every_figure_reports_numbers(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    """Every figure ran: its checks hold finite numbers and its report section and PNG exist.

    One test for all figures, not one per figure: parametrized, xdist would hand the figures to
    several workers, and all but one would sit waiting for the single benchmark run."""
    out, results = smoke_run
    report = (out / "report.md").read_text(encoding="utf-8")
    assert {f["key"] for f in results["figures"]} >= set(FIGURES)
    for name in FIGURES:
        (figure,) = [f for f in results["figures"] if f["key"] == name]
        assert figure["checks"], name
        for check in figure["checks"]:
            numbers = [float(x) for x in NUMBER.findall(check["value"])]
            assert numbers, (name, check)
            assert all(math.isfinite(x) for x in numbers), (name, check)
        assert f"## {figure['title']}" in report, name
    assert list(out.glob("*.png"))


def test_shared_figure_ran_every_case(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    """The shared-store figure's tiny run went through the whole code path: K = 1 and 2 with
    and without Redis, every process exited 0, every row created once, the per-process CPU
    facts read; its numbers are the report's business, not this test's."""
    _out, results = smoke_run
    (figure,) = [f for f in results["figures"] if f["key"] == "shared"]
    cases = figure["data"]["cases"]
    assert {(c["processes"], c["shared"]) for c in cases} == {
        (k, shared) for k in (1, 2) for shared in (False, True)
    }
    for case in cases:
        assert [p["code"] for p in case["per_process"]] == [0] * case["processes"], case
        assert case["created"] == case["rows"], case
        assert all(p["cpu"] > 0 for p in case["per_process"]), case
    assert set(figure["data"]["acquire_seconds"]) == {"in-process", "Redis (loopback)"}


def test_default_output_is_scratch_and_a_miss_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--out`` the suite writes to a new scratch directory, never over the committed
    report; a missed target is printed, and the run still exits 0."""
    import benchmarks.__main__ as cli
    from benchmarks.common import Check, FigureResult

    written: list[Path] = []

    def fake_suite(scale: Any, names: Any, out_dir: Path, *, echo: bool = True) -> Any:
        written.append(out_dir)
        check = Check("a speed ratio", "3.0x", "<= 1.25x", False)
        return [FigureResult("memory", "t", "m", [], [], checks=[check])]

    monkeypatch.setattr(cli, "run_suite", fake_suite)
    assert cli.main(["--size", "smoke", "--only", "memory"]) == 0
    (out,) = written
    assert out.resolve() != cli.COMMITTED_OUT.resolve()
    assert out.is_dir()
    assert not any(out.iterdir())  # freshly made for this run
    out.rmdir()
    assert "targets missed (1): a speed ratio" in capsys.readouterr().err
    assert cli.main(["--size", "smoke", "--only", "memory", "--out", str(out)]) == 0
    assert written[-1] == out


def test_memory_figure_measured_a_real_onboard(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    """Figure 5 ran ``flexpay-batch onboard`` as a subprocess (every row created, or the figure
    would have raised) and read its peak RSS beside validate's."""
    _out, results = smoke_run
    (figure,) = [f for f in results["figures"] if f["key"] == "memory"]
    assert figure["data"]["onboard_rows"] > 0
    assert figure["data"]["onboard_rss"] > 0
    assert any(c["label"].startswith("onboard peak RSS") for c in figure["checks"])
