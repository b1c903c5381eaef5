"""``flexpay-batch runs``: the local runs, newest first: those of ``onboard`` and ``payroll``
(``<state dir>/runs/*``) and those of ``run MANIFEST`` (``<state dir>/bureau/<org>/*``, shown
with their organisation); with ``--queue URL``, every job of a bureau's job queue instead
(``show_queue_runs``).

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
from flexpay_batch.engine.rundir import bureau_runs_root, default_runs_root, state_dir
from flexpay_batch.journal.files import resolve_db


def find_run_dirs(root: Path | None = None) -> list[tuple[str | None, Path]]:
    """The directories that may be runs, each with its organisation (None: not a bureau's).

    Without ``root``: ``<state dir>/runs/*``, and ``<state dir>/bureau/<org>/*`` for each
    organisation. With ``root``: the directories directly under it, and under each of those
    that is not a run itself, its own (a bureau's ``<org>/<job id>``; ``org`` is its name).
    """
    if root is None:
        return _children(default_runs_root()) + _by_org(bureau_runs_root(state_dir()))
    found: list[tuple[str | None, Path]] = []
    for child in _dirs_in(root):
        if resolve_db(child).exists():
            found.append((None, child))
        else:
            found.extend((child.name, run_dir) for run_dir in _dirs_in(child))
    return found


def _dirs_in(parent: Path) -> list[Path]:
    return sorted(path for path in parent.iterdir() if path.is_dir()) if parent.is_dir() else []


def _children(root: Path) -> list[tuple[str | None, Path]]:
    return [(None, run_dir) for run_dir in _dirs_in(root)]


def _by_org(root: Path) -> list[tuple[str | None, Path]]:
    return [(org.name, run_dir) for org in _dirs_in(root) for run_dir in _dirs_in(org)]


def list_runs(root: Path | None = None) -> list[dict[str, Any]]:
    """One summary per run directory ``find_run_dirs(root)`` finds, newest first."""
    runs = []
    for org, run_dir in find_run_dirs(root):
        try:
            report = read_status(run_dir)
        except errors.FlexPayBatchError:
            continue
        counts = report["counts"]
        runs.append(
            {
                "directory": str(run_dir),
                "org": org,
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


def show_runs(root: Path | None, *, as_json: bool) -> int:
    """Print the runs ``find_run_dirs(root)`` finds (a table, or JSON); 0 even when there are
    none."""
    runs = list_runs(root)
    if as_json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        where = root or f"{default_runs_root()} or {bureau_runs_root(state_dir())}"
        print(f"no runs under {where}", file=sys.stderr)
        return 0
    header = (
        "started",
        "kind",
        "file",
        "org",
        "token",
        "state",
        "done",
        "rej",
        "fail",
        "left",
        "dir",
    )
    lines = [
        (
            run["started_at"].replace("T", " ").rstrip("Z"),
            run["kind"],
            Path(run["file"]).name,
            run["org"] or "-",
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
