"""``flexpay-batch status RUN_DIR``: where a run stands, read from its journal.

Opens the journal read-only, so it is safe while the run is going in another process (SQLite
WAL lets a reader see the last committed state without blocking the writer). Whether a
process is working on the run comes from the journal's writer lock, probed without waiting
and without disturbing the writer (``WriterLock.is_held``):

- ``running``: a process holds the lock; rate and ETA are shown.
- ``stopped``: nobody holds it and rows are left (interrupted, crashed, or stopped by an
  error); ``flexpay-batch resume RUN_DIR`` continues it. No rate, no ETA: nothing moves.
- ``finished``: nobody holds it and every row is settled (done or rejected).

Exit codes: 0 finished · 1 running or stopped with rows left · 2 no journal there.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flexpay_batch.core.formatting import format_duration, summary_rows
from flexpay_batch.core.states import OPEN, RowStatus
from flexpay_batch.journal.files import WriterLock, resolve_db
from flexpay_batch.journal.status import META_INPUT_ROWS, StatusSnapshot, status_snapshot

RUNNING, STOPPED, FINISHED = "running", "stopped", "finished"

#: ``status``'s exit code per state.
EXIT_CODES = {FINISHED: 0, RUNNING: 1, STOPPED: 1}


def status_report(snapshot: StatusSnapshot, *, running: bool) -> dict[str, Any]:
    """The snapshot as plain data: state, counts per row state, what is left, rate and ETA.

    Rows of the input the run has not reached yet count as ``pending``, so ``left`` is always
    pending + in_flight + failed. Rate and ETA are None unless the run is ``running``.
    """
    counts = {status.value: snapshot.counts.get(status, 0) for status in RowStatus}
    input_rows = int(snapshot.meta.get(META_INPUT_ROWS, snapshot.total) or 0)
    counts[RowStatus.PENDING.value] += max(0, input_rows - snapshot.total)
    left = sum(counts[status.value] for status in OPEN)
    state = RUNNING if running else (FINISHED if left == 0 else STOPPED)
    rate = snapshot.succeeded_per_second if running else None
    return {
        "state": state,
        "job_id": snapshot.job.job_id,
        "kind": snapshot.job.kind,
        "input": snapshot.job.input_path,
        "base_url": snapshot.job.base_url,
        "token_fingerprint": snapshot.job.token_fingerprint,
        "rows_in_input": max(input_rows, snapshot.total),
        "counts": counts,
        "left": left,
        "rows_per_second_last_minute": None if rate is None else round(rate, 3),
        "eta_seconds": round(left / rate, 1) if rate and left else None,
        "started_at": _iso(snapshot.started_at),
        "last_update": _iso(snapshot.updated_at),
        "seconds_since_update": round(snapshot.taken_at - snapshot.updated_at, 1),
        "meta": {k: v for k, v in snapshot.meta.items() if k != META_INPUT_ROWS},
    }


def read_status(run_dir: Path) -> dict[str, Any]:
    """``run_dir``'s status report; the lock is probed before the read, so a run that ends
    in between reads as running once, never as stopped with its last rows unseen."""
    running = WriterLock.is_held(resolve_db(run_dir))
    return status_report(status_snapshot(run_dir), running=running)


def show_status(run_dir: Path, *, as_json: bool) -> int:
    """Print the status of ``run_dir``; the exit code says its state (``EXIT_CODES``)."""
    report = read_status(run_dir)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report, run_dir)
    return EXIT_CODES[report["state"]]


def _print_table(report: dict[str, Any], run_dir: Path) -> None:
    console = Console(file=sys.stdout, highlight=False)
    console.print(f"job {report['job_id']} ({report['kind']}) against {report['base_url']}")
    console.print(f"input {report['input']}: {report['rows_in_input']} rows")
    table = Table("state", "rows")
    for label, count in summary_rows(report["counts"]):
        table.add_row(label, str(count))
    console.print(table)
    state = report["state"]
    updated = f"last update {format_duration(report['seconds_since_update'])} ago"
    if state == RUNNING:
        rate = report["rows_per_second_last_minute"]
        console.print(
            f"running: {report['left']} rows left · {rate} rows/s over the last minute · "
            f"ETA {format_duration(report['eta_seconds'])} · {updated}"
        )
    elif state == STOPPED:
        console.print(
            f"stopped: {report['left']} rows left · {updated}; continue with "
            f"`flexpay-batch resume {shlex.quote(str(run_dir))}`"
        )
    else:
        console.print(f"finished · {updated}")
    for key, value in report["meta"].items():
        console.print(f"{key}: {value}")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
