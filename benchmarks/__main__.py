"""``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``: run the suite.

Figures: utilisation, alternatives, overhead, journal, memory, startup, shared, bureau
(``benchmarks/__init__``).
The full suite takes a few minutes on two cores; ``--quick`` is a small variant (about a
minute) for checking a set-up; ``--size smoke`` is the seconds-long size the smoke test uses.
``report.md``, ``results.json`` (every check, machine-readable) and the PNGs go to ``--out``;
without it, to a new scratch directory (printed at the end), so a trial run never overwrites
the committed figures in ``benchmarks/results/`` (pass ``--out benchmarks/results`` to refresh
them). Exit 0 when the suite ran, whatever the verdicts (a missed target is reported in
report.md and results.json, not an error); 1 when a figure crashed; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .bureau import figure_bureau
from .common import FULL, QUICK, SMOKE, FigureResult, Scale, Suite, machine
from .memory import figure_memory
from .overhead import figure_journal, figure_overhead
from .report import render, write_report
from .shared_limit import figure_shared
from .simproc import SimProcess
from .startup import figure_startup
from .utilisation import figure_alternatives, figure_utilisation

FIGURES: dict[str, Callable[[Suite], FigureResult]] = {
    "utilisation": figure_utilisation,
    "alternatives": figure_alternatives,
    "overhead": figure_overhead,
    "journal": figure_journal,
    "memory": figure_memory,
    "startup": figure_startup,
    # Needs redis-server on the PATH (see shared_limit.py); CI installs it (.ci/run).
    "shared": figure_shared,
    # Needs redis-server too (see bureau.py).
    "bureau": figure_bureau,
}
#: The committed report and figures: written only when asked for with ``--out``.
COMMITTED_OUT = Path(__file__).resolve().parent / "results"
ANALYSIS_FILE = "analysis.md"
SIZES = {scale.name: scale for scale in (FULL, QUICK, SMOKE)}


def run_suite(
    scale: Scale, names: Sequence[str], out_dir: Path, *, echo: bool = True
) -> list[FigureResult]:
    """Run the figures ``names`` at ``scale``; write report.md and PNGs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = machine()
    started = time.perf_counter()
    figures: list[FigureResult] = []
    with tempfile.TemporaryDirectory(prefix="flexpay-bench-") as tmp, SimProcess() as server:
        suite = Suite(scale=scale, server=server, workdir=Path(tmp), out_dir=out_dir)
        for name in names:
            figure_started = time.perf_counter()
            load_before = os.getloadavg()[0]
            figure = FIGURES[name](suite)
            seconds = time.perf_counter() - figure_started
            # The machine is shared: say how busy it was while this figure was measured.
            reused = " (it reuses runs an earlier figure made)" if seconds < 1 else ""
            figure.notes.append(
                f"Ran in {seconds:.0f} s{reused}; load average (1 min) {load_before:.2f} "
                f"before this figure, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} "
                "cores."
            )
            figures.append(figure)
            if echo:
                _echo(figure, seconds)
    facts["load average at end (1, 5, 15 min)"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    analysis_path = out_dir / ANALYSIS_FILE
    analysis = analysis_path.read_text(encoding="utf-8") if analysis_path.is_file() else ""
    text = render(
        figures,
        scale=scale,
        machine=facts,
        elapsed=time.perf_counter() - started,
        analysis=analysis if scale.name == "full" else "",
    )
    write_report(out_dir / "report.md", text)
    _write_json(out_dir / "results.json", figures, scale)
    return figures


def _write_json(path: Path, figures: list[FigureResult], scale: Scale) -> None:
    """Every figure's checks and headline numbers, for scripts (the README's table)."""
    content = {
        "size": scale.name,
        "figures": [
            {
                "key": f.key,
                "title": f.title,
                "checks": [dataclasses.asdict(c) for c in f.checks],
                "data": f.data,
            }
            for f in figures
        ],
    }
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def _echo(figure: FigureResult, seconds: float) -> None:
    print(f"{figure.title} ({seconds:.0f} s)", file=sys.stderr)
    for check in figure.checks:
        print(
            f"  {check.label}: {check.value} (target {check.target}) {check.verdict}",
            file=sys.stderr,
        )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="same as --size quick")
    parser.add_argument("--size", choices=list(SIZES), default="full", help="benchmark sizes")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(FIGURES),
        metavar="NAME",
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output directory (default: a new scratch directory; {COMMITTED_OUT} holds the "
        "committed report)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite from the command line; 0 when it ran (verdicts are in the report)."""
    args = _parse(argv)
    scale = QUICK if args.quick else SIZES[args.size]
    out: Path = args.out or Path(tempfile.mkdtemp(prefix=f"flexpay-bench-{scale.name}-"))
    figures = run_suite(scale, args.only or list(FIGURES), out)
    missed = [c.label for f in figures for c in f.checks if c.passed is False]
    print(f"wrote {out / 'report.md'}", file=sys.stderr)
    if missed:
        # A target missed is a finding to read, not a failure of the benchmark run.
        print(f"targets missed ({len(missed)}): {'; '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
