"""Figure 6: start-up of the light commands against importing the CLI library alone.

``flexpay-batch --help``, ``validate`` (on a 5-row file) and ``status`` (of a finished 5-row
run) each run as a fresh interpreter, as a user runs them (``python -m flexpay_batch``), beside
the baseline ``python -c "import typer"``. The commands are interleaved round by round so a
burst of load on the shared machine hits them all alike; the median of the rounds is reported,
both as wall seconds and as CPU seconds (user + system of the child, from ``os.wait4``), the
latter being the steadier figure on a busy machine. Target: each command ≤ 2x the baseline.

The run directory for ``status`` comes from one ``onboard --sandbox`` of the same 5 rows, made
before timing starts. For a per-module view: ``python -X importtime -m flexpay_batch --help``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Check, FigureResult, Suite, fmt
from .data import write_onboarding_csv
from .plots import bar_figure

TARGET_RATIO = 2.0
TIMEOUT_SECONDS = 120.0
BASELINE = "import typer"
#: The library's floor for a command with an argument: typer >= 0.2x converts every parameter
#: through a pydantic TypeAdapter when the command runs (importing pydantic and its plugin
#: loader), a cost ``--help`` does not pay and no code of ours can avoid.
TYPER_COMMAND = (
    "import sys, typer\n"
    "from pathlib import Path\n"
    "app = typer.Typer()\n"
    "@app.command()\n"
    "def main(path: Path, json_output: bool = False) -> None:\n"
    "    print(path)\n"
    "app()\n"
)


def _timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process; it must exit 0."""
    started = time.perf_counter()
    child = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + TIMEOUT_SECONDS
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            child.kill()
        time.sleep(0.002)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read() if child.stderr else b""
    if child.returncode != 0:
        raise RuntimeError(f"{args} exited {child.returncode}: {stderr.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def figure_startup(suite: Suite) -> FigureResult:
    """Figure 6: --help, validate and status against ``import typer``."""
    rounds = {"smoke": 1, "quick": 5}.get(suite.scale.name, 11)
    workdir = Path(suite.run_dir("startup"))
    rows = write_onboarding_csv(workdir / "five.csv", 5)
    run_dir = workdir / "run"
    cli = [sys.executable, "-m", "flexpay_batch"]
    subprocess.run(
        [*cli, "onboard", "--sandbox", str(rows), "--run-dir", str(run_dir)],
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
    )
    commands: dict[str, list[str]] = {
        "import typer (baseline)": [sys.executable, "-c", BASELINE],
        "bare typer command, one Path arg": [sys.executable, "-c", TYPER_COMMAND, str(rows)],
        "flexpay-batch --help": [*cli, "--help"],
        "flexpay-batch validate": [*cli, "validate", str(rows)],
        "flexpay-batch status": [*cli, "status", str(run_dir)],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    if suite.scale.name != "smoke":  # the smoke size only checks that the figure runs
        for args in commands.values():  # one untimed warm-up each: page cache, .pyc files
            _timed(args, workdir)
    for _ in range(rounds):
        for name, args in commands.items():
            one_wall, one_cpu = _timed(args, workdir)
            walls[name].append(one_wall)
            cpus[name].append(one_cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    base = "import typer (baseline)"
    table = [
        [
            name,
            fmt(wall[name], 3),
            fmt(wall[name] / wall[base], 2),
            fmt(cpu[name], 3),
            fmt(cpu[name] / cpu[base], 2),
        ]
        for name in commands
    ]
    checks = [
        Check(
            f"{name} CPU ÷ import typer (wall {fmt(wall[name] / wall[base], 2)}x)",
            f"{fmt(cpu[name] / cpu[base], 2)}x",
            f"≤ {TARGET_RATIO:g}x",
            cpu[name] / cpu[base] <= TARGET_RATIO,
        )
        for name in commands
        if name.startswith("flexpay-batch")
    ]
    plot = bar_figure(
        suite.out_dir / "fig6_startup.png",
        "start-up, median seconds",
        {"wall s": wall, "CPU s": cpu},
        "",
    )
    return FigureResult(
        key="startup",
        title="6. Start-up of the light commands",
        method=(
            f"Each command as a fresh `python -m flexpay_batch` process, {rounds} interleaved "
            "rounds after one warm-up, median reported; CPU = user + system seconds of the child "
            "(`os.wait4`). Baseline: `python -c 'import typer'`. validate reads a 5-row file; "
            "status reads the journal of a finished 5-row sandbox run. A bare typer app with one "
            "Path argument is shown as the library's own floor for a command with arguments."
        ),
        header=["command", "wall s", "wall ÷ baseline", "CPU s", "CPU ÷ baseline"],
        rows=table,
        checks=checks,
        plots=[plot.name],
        data={"wall": wall, "cpu": cpu},
    )
