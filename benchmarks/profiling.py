"""Where the engine's time goes: one engine run to profile, and a summary of a py-spy profile.

    py-spy record --gil --format raw -r 250 -o engine.txt -- \\
        python -m benchmarks.profiling run 10000            # limits off, journal on
    python -m benchmarks.profiling summarize engine.txt     # share of GIL-holding samples

``--gil`` samples only the thread holding the GIL, so for this single-process asyncio client
the shares are shares of CPU time. Only samples inside the timed run count (the stack holds
``run_engine`` or is a worker thread); each goes to the first category whose marker appears in
its stack (most specific first); ``other`` is the event loop's own work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

#: (category, markers): a sample belongs to the first category with a marker in its stack.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("count rows, hash input, write outputs", ("count_rows", "_input_sha", "write_outputs")),
    ("journal (SQLite commits)", ("journal/",)),
    ("read + validate rows, keys and bodies (reader thread)", ("_take_batch",)),
    ("aiohttp send/receive, TLS (the bare loop does this too)", ("FlexPayClient._send",
                                                                  "_read_ready")),
    ("rate-limit header parsing", ("parse_feedback",)),
    ("client/limiter/retry loop per request", ("FlexPayClient.request", "retry/loop.py",
                                               "api/session.py")),
    ("pipeline, worker, row bookkeeping, anyio", ("pipeline.py", "engine/worker.py",
                                                  "engine/run.py", "anyio")),
]  # fmt: skip


def categorise(stack: str) -> str:
    """The category of one ``;``-joined py-spy stack."""
    for name, markers in CATEGORIES:
        if any(marker in stack for marker in markers):
            return name
    return "other (event loop, aiohttp internals)"


def summarize(raw: Path) -> dict[str, float]:
    """Share of samples per category in a py-spy ``--format raw`` file (fractions of 1)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, number = line.rpartition(" ")
        if "run_engine" in stack or "Thread._bootstrap" in stack:
            counts[categorise(stack)] += int(number)
    total = counts.total() or 1
    return {name: n / total for name, n in counts.most_common()}


def run_once(rows: int, journal: bool) -> None:
    """One engine run with limits off against a simulator in a child process (figure 3)."""
    from flexpay_batch.sim import UNLIMITED, SimConfig

    from .common import LIMITS_OFF
    from .data import write_onboarding_csv
    from .engine import run_engine
    from .simproc import SimProcess

    with tempfile.TemporaryDirectory() as tmp, SimProcess() as server:
        csv_path = write_onboarding_csv(Path(tmp) / "rows.csv", rows)
        with server.running(SimConfig(limits=UNLIMITED)) as sim:
            run = run_engine(csv_path, sim, Path(tmp) / "run", limits=LIMITS_OFF, journal=journal)
    print(f"{rows / run.wall_seconds:.0f} requests/s, "
          f"{1000 * run.cpu_seconds / rows:.3f} CPU s per 1,000", file=sys.stderr)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one engine run with limits off")
    run.add_argument("rows", type=int)
    run.add_argument("--journal-off", action="store_true")
    summary = commands.add_parser("summarize", help="category shares of a py-spy raw profile")
    summary.add_argument("raw", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run_once(args.rows, journal=not args.journal_off)
        return 0
    for name, share in summarize(args.raw).items():
        print(f"{100 * share:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
