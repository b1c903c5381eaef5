"""Figure 5: ``flexpay-batch validate`` on a large file, and a real ``onboard`` run: peak memory.

The file (``Scale.memory_rows`` valid synthetic rows) is generated into the suite's temp dir
and deleted afterwards. ``validate`` runs as a subprocess exactly as a user runs it (the console
entry point ``flexpay_batch.cli.app:main``); so does the baseline, a plain ``csv.DictReader`` loop
over the same file that only counts rows. Peak RSS is the kernel's high-water mark of the
child's own address space (``VmHWM`` in ``/proc/PID/status``, read every 20 ms; it only ever
grows, so the last reading before exit is the peak up to 20 ms before the end), MB = 2^20
bytes. ``ru_maxrss`` from ``os.wait4`` is not used: Linux carries the forking parent's
resident size (this benchmark process) over into the child's ``ru_maxrss``. Rows per second
are rows / wall time of the whole process (interpreter start and imports included).

The onboarding run (``Scale.onboard_rows`` rows, 100,000 at the full size) is
``flexpay-batch onboard FILE --run-dir DIR`` as a subprocess against the simulator in its own
process (``simproc``, limits off on both sides: ``UNLIMITED`` there, 10^9/s and a burst of 10^9
on the command line), journal and outputs included; its peak RSS is measured the same way. It
checks issue 16's "memory stays flat": 100,000 rows within 120 MB.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from flexpay_batch.sim import UNLIMITED, SimConfig

from .common import Check, FigureResult, Suite, cli_env, fmt
from .data import write_onboarding_csv
from .plots import bar_figure

CLI = "from flexpay_batch.cli.app import main; main()"
DICT_READER = (
    "import csv, sys\n"
    "n = 0\n"
    "with open(sys.argv[1], encoding='utf-8', newline='') as f:\n"
    "    for _ in csv.DictReader(f):\n"
    "        n += 1\n"
    "print(n)\n"
)
PROCESS_TIMEOUT = 900.0
#: Target for validate's peak RSS (``Scale.memory_rows``: 1,000,000 rows at the full size).
RSS_TARGET_MB = 120.0
#: Issue 16: memory stays flat, an onboarding run of 100,000 rows within 120 MB peak RSS.
ONBOARD_RSS_TARGET_MB = 120.0
#: Limits off on the command line (the simulator runs ``UNLIMITED``).
LIMITS_OFF_ARGS = [
    *("--write-limit", "1000000000/s", "--write-burst", "1000000000"),
    *("--read-limit", "1000000000/s", "--read-burst", "1000000000"),
]


@dataclass(frozen=True)
class ProcessRun:
    """One child process: exit code, wall seconds, peak RSS (VmHWM) and peak sampled RSS, MB."""

    returncode: int
    wall_seconds: float
    peak_rss_mb: float
    polled_rss_mb: float


def _high_water_kb(pid: int) -> int | None:
    """``VmHWM`` of ``pid`` in kB, or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _has_exec(process: psutil.Process, args: list[str]) -> bool:
    """True once the child runs ``args`` (before its exec it is a copy of this process)."""
    try:
        return bool(process.cmdline() == args)
    except psutil.Error:
        return False


def measure_process(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``args``; return its wall time and peak RSS (see the module docstring)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher, high_water, polled = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        if time.perf_counter() - started > PROCESS_TIMEOUT:
            child.kill()
        if _has_exec(watcher, args):
            high_water = max(high_water, _high_water_kb(child.pid) or 0)
            with contextlib.suppress(psutil.Error):
                polled = max(polled, watcher.memory_info().rss)
        time.sleep(0.02)
    wall = time.perf_counter() - started
    return ProcessRun(child.returncode, wall, high_water / 1024.0, polled / 2**20)


def measure_onboard(suite: Suite) -> ProcessRun:
    """``flexpay-batch onboard`` of ``Scale.onboard_rows`` rows, limits off, as a subprocess
    against a fresh simulator; every row must be created."""
    rows = suite.scale.onboard_rows
    path = write_onboarding_csv(suite.workdir / "memory-onboard.csv", rows)
    try:
        with suite.server.running(SimConfig(limits=UNLIMITED)) as sim:
            env = cli_env(sim)
            args = [sys.executable, "-c", CLI, "onboard", str(path)]
            args += ["--run-dir", str(suite.run_dir("memory-onboard")), *LIMITS_OFF_ARGS]
            run = measure_process(args, suite.workdir, env)
    finally:
        path.unlink()
    created = sim.report.employees_created
    if run.returncode != 0 or created != rows:
        raise RuntimeError(f"onboard exited {run.returncode}, created {created} of {rows} rows")
    return run


def figure_memory(suite: Suite) -> FigureResult:
    """Figure 5: validate against a DictReader loop over the same generated file, and the
    peak memory of a real onboarding run."""
    rows = suite.scale.memory_rows
    path = write_onboarding_csv(suite.workdir / "memory-rows.csv", rows)
    size_mb = path.stat().st_size / 2**20
    try:
        validate = measure_process(
            [sys.executable, "-c", CLI, "validate", str(path)], suite.workdir
        )
        reader = measure_process([sys.executable, "-c", DICT_READER, str(path)], suite.workdir)
    finally:
        path.unlink()
    if validate.returncode != 0 or reader.returncode != 0:
        raise RuntimeError(f"validate exited {validate.returncode}, reader {reader.returncode}")
    onboard_rows = suite.scale.onboard_rows
    onboard = measure_onboard(suite)
    speed = (rows / validate.wall_seconds) / (rows / reader.wall_seconds)
    plot = bar_figure(
        suite.out_dir / "fig5_memory.png",
        f"validate on {rows:,} rows ({size_mb:.0f} MB CSV); onboard on {onboard_rows:,} rows",
        {
            "peak RSS (MB)": {
                "validate": validate.peak_rss_mb,
                "DictReader": reader.peak_rss_mb,
                "onboard": onboard.peak_rss_mb,
            },
            "rows per second": {
                "validate": rows / validate.wall_seconds,
                "DictReader": rows / reader.wall_seconds,
            },
        },
        "",
    )
    return FigureResult(
        key="memory",
        title="5. Memory: validate and onboard",
        method=(
            f"`flexpay-batch validate` on a generated {rows:,}-row onboarding CSV "
            f"({size_mb:.0f} MB, every row valid), and a plain `csv.DictReader` loop over the "
            "same file, each as a subprocess. Peak RSS is the child's `VmHWM` (kernel high-water "
            "mark of its resident set, read from /proc every 20 ms); psutil's sampled RSS is "
            "shown beside it. rows/s = rows / wall seconds of the process (start-up included). "
            f"Then `flexpay-batch onboard` of a generated {onboard_rows:,}-row file as a "
            "subprocess against the simulator in its own process, limits off on both sides "
            "(simulator `UNLIMITED`, client `--write-limit 1000000000/s` and a burst of 10⁹), "
            "8 workers, journal and outputs included, every row created; its peak RSS "
            "measured the same way (its rows/s is a CPU-bound client sharing two cores with "
            "the simulator, see figure 3 for the engine's speed). The files are deleted "
            "afterwards."
        ),
        header=[
            "process",
            "rows",
            "wall s",
            "rows/s",
            "peak RSS MB (kernel)",
            "peak RSS MB (polled)",
        ],
        rows=[
            _row("validate", rows, validate),
            _row("csv.DictReader loop", rows, reader),
            _row("onboard (limits off)", onboard_rows, onboard),
        ],
        checks=[
            Check(
                "validate peak RSS",
                f"{validate.peak_rss_mb:.1f} MB",
                f"< {RSS_TARGET_MB:g} MB",
                validate.peak_rss_mb < RSS_TARGET_MB,
            ),
            Check("rows/s, validate ÷ DictReader", fmt(speed), "none (informational)", None),
            Check(
                f"onboard peak RSS, {onboard_rows:,} rows",
                f"{onboard.peak_rss_mb:.1f} MB",
                f"≤ {ONBOARD_RSS_TARGET_MB:g} MB at 100,000 rows",
                onboard.peak_rss_mb <= ONBOARD_RSS_TARGET_MB,
            ),
        ],
        plots=[plot.name],
        data={
            "speed": speed,
            "rss": validate.peak_rss_mb,
            "onboard_rows": onboard_rows,
            "onboard_rss": onboard.peak_rss_mb,
            "onboard_seconds": onboard.wall_seconds,
        },
    )


def _row(name: str, rows: int, run: ProcessRun) -> list[str]:
    return [
        name,
        f"{rows:,}",
        fmt(run.wall_seconds, 2),
        fmt(rows / run.wall_seconds, 0),
        fmt(run.peak_rss_mb, 1),
        fmt(run.polled_rss_mb, 1),
    ]
