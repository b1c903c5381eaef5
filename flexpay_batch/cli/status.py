"""``flexpay-batch status RUN_DIR``: where a run stands, read from its journal.

Opens the journal read-only, so it is safe while the run is going in another process (SQLite
WAL lets a reader see the last committed state without blocking the writer).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from flexpay_batch.core.states import SETTLED, RowStatus
from flexpay_batch.engine.progress import format_duration
from flexpay_batch.journal.status import META_INPUT_ROWS, StatusSnapshot, status_snapshot


def status_report(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The snapshot as plain data: counts per state, rate, what is left and the ETA."""
    counts = {status.value: snapshot.counts.get(status, 0) for status in RowStatus}
    input_rows = int(snapshot.meta.get(META_INPUT_ROWS, snapshot.total) or 0)
    settled = sum(counts[status.value] for status in SETTLED)
    left = max(0, input_rows - settled)
    rate = snapshot.succeeded_per_second
    return {
        "job_id": snapshot.job.job_id,
        "kind": snapshot.job.kind,
        "input": snapshot.job.input_path,
        "base_url": snapshot.job.base_url,
        "rows_in_input": input_rows,
        "counts": counts,
        "left": left,
        "rows_per_second_last_minute": round(rate, 3),
        "eta_seconds": round(left / rate, 1) if rate > 0 and left else None,
        "started_at": _iso(snapshot.started_at),
        "last_update": _iso(snapshot.updated_at),
        "seconds_since_update": round(snapshot.taken_at - snapshot.updated_at, 1),
        "meta": {k: v for k, v in snapshot.meta.items() if k != META_INPUT_ROWS},
    }


def show_status(run_dir: Any, *, as_json: bool) -> int:
    """Print the status of ``run_dir``; exit 0 when every row is settled, else 1."""
    report = status_report(status_snapshot(run_dir))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0 if report["left"] == 0 else 1


def _print_table(report: dict[str, Any]) -> None:
    console = Console(file=sys.stdout, highlight=False)
    console.print(f"job {report['job_id']} ({report['kind']}) against {report['base_url']}")
    console.print(f"input {report['input']}: {report['rows_in_input']} rows")
    table = Table("state", "rows")
    for state, count in report["counts"].items():
        table.add_row(state, str(count))
    console.print(table)
    eta = report["eta_seconds"]
    console.print(
        f"left: {report['left']} rows · {report['rows_per_second_last_minute']} rows/s "
        f"over the last minute · ETA {format_duration(eta)} · "
        f"last update {report['seconds_since_update']} s ago"
    )
    for key, value in report["meta"].items():
        console.print(f"{key}: {value}")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
