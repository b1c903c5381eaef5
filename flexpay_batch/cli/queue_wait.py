"""What ``enqueue --wait`` shows while the workers run its jobs.

On a terminal, a live table of the waited jobs (one row each: organisation, kind, state,
rows, rejected, failed, worker) under which the queue's own news (it stopped answering,
it answers again) scrolls; in a log or a pipe, one combined progress line at most every
``PROGRESS_SECONDS`` and when the last job ends, as before. The polling and the exit code
are ``cli.queue``'s: a display only shows the ``JobView`` list it is handed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from flexpay_batch.cli.progress_base import write_best_effort

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from flexpay_batch.bureau.queue import JobView

#: Seconds between two progress lines in a log when nothing ended.
PROGRESS_SECONDS = 5.0
#: The live table's columns (a job's id is printed by ``enqueue`` before the wait begins).
COLUMNS = ("job", "org", "kind", "state", "rows", "rejected", "failed", "worker")


class WaitDisplay(Protocol):
    """Where ``enqueue --wait`` shows the jobs; implementations never raise."""

    def show(self, views: Sequence[JobView | None], *, ended: bool) -> None:
        """The jobs as the queue holds them now (None: a job the queue no longer holds)."""

    def say(self, text: str) -> None:
        """A sentence about the queue itself."""

    def close(self) -> None:
        """Stop drawing; what was shown last stays on the screen."""


def progress_line(views: Sequence[JobView | None]) -> str:
    """Every waited job in one line: rows, rejected, failed, and how many jobs per state."""
    states = Counter("gone" if view is None else view.state for view in views)
    known = [view for view in views if view is not None]
    done = sum(view.rows_done for view in known)
    totals = [view.rows_total for view in known]
    total = "?" if None in totals else str(sum(t for t in totals if t is not None))
    rejected = sum(view.rejected for view in known)
    failed = sum(view.failed for view in known)
    jobs = " · ".join(f"{state} {n}" for state, n in sorted(states.items()))
    return f"{done}/{total} rows · rejected {rejected} · failed {failed} · jobs: {jobs}"


class LineDisplay:
    """Plain lines for logs and pipes: a changed progress line at most every few seconds."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._last_line = ""
        self._last_shown: float | None = None

    def show(self, views: Sequence[JobView | None], *, ended: bool) -> None:
        line = progress_line(views)
        now = self._clock()
        due = self._last_shown is None or now - self._last_shown >= self._interval
        if line != self._last_line and (due or ended):
            write_best_effort(self._stream, f"progress: {line}\n")
            self._last_line, self._last_shown = line, now

    def say(self, text: str) -> None:
        write_best_effort(self._stream, text + "\n")

    def close(self) -> None:
        pass


class LiveDisplay:
    """A live table of the waited jobs on a terminal, redrawn at each look at the queue."""

    def __init__(self, ids: Sequence[str], console: Console) -> None:
        from rich.live import Live

        self._ids = list(ids)
        self._console = console
        self._live: Live | None = Live(
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._safely(self._live.start)

    def _safely(self, draw: Callable[[], object]) -> None:
        # A closed terminal must not stop the wait (the exit code is still to come).
        try:
            draw()
        except (OSError, ValueError):
            self._console.quiet = True

    def show(self, views: Sequence[JobView | None], *, ended: bool) -> None:
        if self._live is not None:
            live, table = self._live, jobs_table(self._ids, views)
            self._safely(lambda: live.update(table, refresh=True))

    def say(self, text: str) -> None:
        self._safely(lambda: self._console.print(text, highlight=False, markup=False))

    def close(self) -> None:
        if self._live is not None:
            self._safely(self._live.stop)
            self._live = None


def jobs_table(ids: Sequence[str], views: Sequence[JobView | None]) -> Table:
    """One row per waited job, and the combined progress line as the caption."""
    from rich.table import Table

    table = Table(*COLUMNS, box=None, caption=progress_line(views), caption_justify="left")
    for job_id, view in zip(ids, views, strict=True):
        if view is None:
            table.add_row(job_id, "", "", "gone", "", "", "", "", style="red")
            continue
        total = "?" if view.rows_total is None else str(view.rows_total)
        style = {"done": "green", "failed": "red", "running": "bold"}.get(view.state, "")
        table.add_row(
            job_id,
            view.org,
            view.kind,
            view.state,
            f"{view.rows_done}/{total}",
            str(view.rejected),
            str(view.failed),
            view.worker or "-",
            style=style,
        )
    return table


def make_wait_display(ids: Sequence[str], stream: TextIO = sys.stderr) -> WaitDisplay:
    """The live table on a terminal, plain lines otherwise."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # closed, or file-like without isatty
        terminal = False
    if terminal:
        from rich.console import Console

        return LiveDisplay(ids, Console(file=stream))
    return LineDisplay(stream)


__all__ = [
    "COLUMNS",
    "PROGRESS_SECONDS",
    "LineDisplay",
    "LiveDisplay",
    "WaitDisplay",
    "jobs_table",
    "make_wait_display",
    "progress_line",
]
