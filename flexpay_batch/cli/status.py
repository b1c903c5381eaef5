"""``flexpay-batch status RUN_DIR``: where a run stands, read from its journal.

Opens the journal read-only, so it is safe while the run is going in another process (SQLite
WAL lets a reader see the last committed state without blocking the writer). Whether a
process is working on the run comes from the journal's writer lock, probed without waiting
and without disturbing the writer (``WriterLock.is_held``):

- ``running``: a process holds the lock; rate and ETA are shown.
- ``stopped``: nobody holds it and rows are left (interrupted, crashed, or stopped by an
  error); ``flexpay-batch resume RUN_DIR`` continues it. No rate, no ETA: nothing moves.
- ``incomplete``: nobody holds it and every row is settled, but the job's own work is left
  (a payroll run left in draft, not submitted): the journal's ``unfinished_work`` says what,
  ``next_step`` what to do (resume, or the same command again).
- ``finished``: nobody holds it, every row is settled (done or rejected) and the job's own
  work is done.

Exit codes: 0 finished · 1 running, stopped with rows left, or incomplete · 2 no journal there.
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
from flexpay_batch.core.states import META_NEXT_STEP, META_UNFINISHED_WORK, OPEN, RowStatus
from flexpay_batch.journal.files import WriterLock, resolve_db
from flexpay_batch.journal.status import META_INPUT_ROWS, StatusSnapshot, status_snapshot

RUNNING, STOPPED, INCOMPLETE, FINISHED = "running", "stopped", "incomplete", "finished"

#: ``status``'s exit code per state.
EXIT_CODES = {FINISHED: 0, RUNNING: 1, STOPPED: 1, INCOMPLETE: 1}
#: Meta keys shown in their own fields, not in ``meta``.
_OWN_FIELDS = frozenset({META_INPUT_ROWS, META_UNFINISHED_WORK, META_NEXT_STEP})


def status_report(
    snapshot: StatusSnapshot, *, running: bool, run_dir: Path | None = None
) -> dict[str, Any]:
    """The snapshot as plain data: state, counts per row state, what is left, rate and ETA.

    Rows of the input the run has not reached yet count as ``pending``, so ``left`` is always
    pending + in_flight + failed. Rate and ETA are None unless the run is ``running``.
    ``unfinished_work`` is the job's own work left beyond its rows (None when there is none);
    ``next_step`` what to do when the run is stopped or incomplete, naming ``run_dir``.
    """
    counts = {status.value: snapshot.counts.get(status, 0) for status in RowStatus}
    input_rows = int(snapshot.meta.get(META_INPUT_ROWS, snapshot.total) or 0)
    counts[RowStatus.PENDING.value] += max(0, input_rows - snapshot.total)
    left = sum(counts[status.value] for status in OPEN)
    unfinished = snapshot.meta.get(META_UNFINISHED_WORK) or None
    state = _state(running=running, rows_left=left, unfinished=unfinished)
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
        "unfinished_work": unfinished,
        "next_step": _next_step(state, snapshot.meta.get(META_NEXT_STEP), run_dir),
        "meta": {k: v for k, v in snapshot.meta.items() if k not in _OWN_FIELDS},
    }


def _state(*, running: bool, rows_left: int, unfinished: str | None) -> str:
    if running:
        return RUNNING
    if rows_left:
        return STOPPED
    return INCOMPLETE if unfinished else FINISHED


def _next_step(state: str, journaled: str | None, run_dir: Path | None) -> str | None:
    """What the operator does next: for a stopped run, resume it; for an incomplete one, what
    the job journaled (``RUN_DIR`` replaced by the directory)."""
    where = shlex.quote(str(run_dir)) if run_dir is not None else "RUN_DIR"
    if state == STOPPED:
        return f"flexpay-batch resume {where}"
    if state == INCOMPLETE:
        return (journaled or f"flexpay-batch resume {where}").replace("RUN_DIR", where)
    return None


def read_status(run_dir: Path) -> dict[str, Any]:
    """``run_dir``'s status report; the lock is probed before the read, so a run that ends
    in between reads as running once, never as stopped with its last rows unseen."""
    running = WriterLock.is_held(resolve_db(run_dir))
    return status_report(status_snapshot(run_dir), running=running, run_dir=run_dir)


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
            f"`{report['next_step']}`"
        )
    elif state == INCOMPLETE:
        console.print(
            f"incomplete: every row is settled, but {report['unfinished_work']} · {updated}; "
            f"next: {_as_step(report['next_step'])}"
        )
    else:
        console.print(f"finished · {updated}")
    for key, value in report["meta"].items():
        console.print(f"{key}: {value}")


def _as_step(step: str) -> str:
    """A command in backticks; a sentence as it is."""
    return f"`{step}`" if step.startswith("flexpay-batch ") else step


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
