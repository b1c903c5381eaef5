"""``flexpay-batch runs``: the local runs under the default runs root, newest first; with
``--queue URL``, every job of a bureau's job queue instead (``show_queue_runs``).

Each run directory's journal is read the way ``status`` reads it (read-only, the writer lock
probed), so listing is safe while runs are going. A directory without a readable journal is
skipped: the root may hold other files, and a half-created run is not worth an error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flexpay_batch.cli.status import read_status
from flexpay_batch.core import errors
from flexpay_batch.core.states import SUCCEEDED


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One summary per run directory directly under ``root``, newest first."""
    runs = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not run_dir.is_dir():
            continue
        try:
            report = read_status(run_dir)
        except errors.FlexPayBatchError:
            continue
        counts = report["counts"]
        runs.append(
            {
                "directory": str(run_dir),
                "kind": report["kind"],
                "file": report["input"],
                "base_url": report["base_url"],
                "token_fingerprint": report["token_fingerprint"],
                "started_at": report["started_at"],
                "state": report["state"],
                "rows": report["rows_in_input"],
                "done": sum(counts[status.value] for status in SUCCEEDED),
                "rejected": counts["rejected"],
                "failed": counts["failed"],
                "left": report["left"],
            }
        )
    runs.sort(key=lambda run: run["started_at"], reverse=True)
    return runs


def show_runs(root: Path, *, as_json: bool) -> int:
    """Print the runs under ``root`` (a table, or JSON); 0 even when there are none."""
    runs = list_runs(root)
    if as_json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"no runs under {root}", file=sys.stderr)
        return 0
    header = ("started", "kind", "file", "token", "state", "done", "rej", "fail", "left", "dir")
    lines = [
        (
            run["started_at"].replace("T", " ").rstrip("Z"),
            run["kind"],
            Path(run["file"]).name,
            _short_token(run["token_fingerprint"]),
            run["state"],
            str(run["done"]),
            str(run["rejected"]),
            str(run["failed"]),
            str(run["left"]),
            run["directory"],
        )
        for run in runs
    ]
    if not sys.stdout.isatty():
        # Pipes get whole values, tab-separated, one run a line: for cut, awk and grep.
        for line in (header, *lines):
            print("\t".join(line))
        return 0
    table = Table(*header[:-1], box=None)
    table.add_column("directory", overflow="fold")
    for line in lines:
        table.add_row(*line)
    Console(file=sys.stdout, highlight=False).print(table)
    return 0


def _short_token(fingerprint: str) -> str:
    # The fingerprint is already one-way; eight characters tell two organisations apart.
    return fingerprint if fingerprint == "sandbox" else fingerprint[:8]


def show_queue_runs(url: str, *, as_json: bool) -> int:
    """Print every job the bureau queue at ``url`` holds (a table, or JSON); 0 even if none."""
    import anyio

    from flexpay_batch.bureau.queue import JobView, list_jobs, open_queue

    async def read() -> list[JobView]:
        async with open_queue(url) as queue:
            return await list_jobs(queue)

    jobs = anyio.run(read)
    if as_json:
        print(json.dumps([job.to_dict() for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs on the queue", file=sys.stderr)
        return 0
    header = ("org", "kind", "state", "rows", "rej", "fail", "worker", "updated", "id")
    lines = [
        (
            job.org,
            job.kind,
            job.state,
            f"{job.rows_done}/{'?' if job.rows_total is None else job.rows_total}",
            str(job.rejected),
            str(job.failed),
            job.worker or "-",
            _clock(job.updated),
            job.id,
        )
        for job in jobs
    ]
    _print_table(header, lines)
    return 0


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """Tab-separated lines on a pipe; a table on a terminal."""
    if not sys.stdout.isatty():
        for line in (header, *lines):
            print("\t".join(line))
        return
    table = Table(*header, box=None)
    for line in lines:
        table.add_row(*line)
    Console(file=sys.stdout, highlight=False).print(table)
