"""What the operator sees while a run works: a rich progress bar, plain lines, or JSON lines.

::

    reporter = make_reporter(json_logs=False, stream=sys.stderr)
    execute_request(request, reporter=reporter)

The engine reports events (counts and statuses only, never a row's content) through its
``engine.progress.Reporter`` protocol; each reporter here turns them into one kind of output.
Time comes from an injected clock (monotonic seconds), so throttling and ETAs are tested
without sleeping.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from flexpay_batch.cli.progress_base import (
    Clock,
    CountingReporter,
    ProgressSnapshot,
    ThrottledReporter,
    finish_sentence,
    narrow_stats_text,
    stats_text,
    write_best_effort,
)
from flexpay_batch.core.formatting import format_average, format_duration, summary_rows
from flexpay_batch.engine.progress import Reporter

__all__ = [
    "JsonReporter",
    "PlainReporter",
    "RichReporter",
    "banner_printer",
    "json_line",
    "make_reporter",
]

_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}


class PlainReporter(ThrottledReporter):
    """One line per event for logs and pipes; progress lines throttled to one per ``interval`` s.

    ::

        start: 500 rows, limit 100 rows/min, estimated 5m00s
        progress: 120/500 · rejected 3 · failed 0 · retrying 2 · 97.2/min of 100/min · eta 3m52s
        warning: the server asked us to slow down
        finished in 5m02s (average 99/min): created 488, already existed 6, replayed 0, ...
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 5.0,
        clock: Clock = time.monotonic,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(interval=interval, clock=clock, redact=redact)
        self._stream = stream

    def _line(self, text: str) -> None:
        write_best_effort(self._stream, text + "\n")

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._line("start: " + self._start_sentence(total, estimate_seconds, limit))

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        self._line("progress: " + stats_text(snap))

    def _on_message(self, text: str, level: int) -> None:
        self._line(f"{logging.getLevelName(level).lower()}: {text}")

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self._line(finish_sentence(summary, snap))


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no NaN or Infinity; an unknowable number is null.
    return value if value is not None and math.isfinite(value) else None


def _utc_timestamp(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_line(event: str, epoch_seconds: float, **fields: object) -> str:
    """One ``--json-logs`` line: ``{"ts": ..., "event": event, **fields}`` and a newline;
    ``ts`` is ``epoch_seconds`` as UTC ISO 8601 with milliseconds."""
    record = {"ts": _utc_timestamp(epoch_seconds), "event": event, **fields}
    return json.dumps(record, ensure_ascii=False) + "\n"


class JsonReporter(ThrottledReporter):
    """``--json-logs``: one JSON object per line, each with ``ts`` (UTC ISO 8601) and ``event``.

    Events: ``start`` (total_rows, estimate_seconds, limit_per_second), ``progress`` (done, total,
    rejected, failed, retrying, rate_per_second, limit_per_second, eta_seconds, by_status),
    ``message`` (level, message) and ``finish`` (summary, elapsed_seconds). Progress objects are
    throttled like plain lines. ``wall_clock`` gives the epoch seconds for ``ts``.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(interval=interval, clock=clock, redact=redact)
        self._stream = stream
        self._wall_clock = wall_clock

    def _emit(self, event: str, **fields: object) -> None:
        write_best_effort(self._stream, json_line(event, self._wall_clock(), **fields))

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._emit(
            "start",
            total_rows=total,
            done_rows=self._tally.earlier,
            estimate_seconds=_finite_or_none(estimate_seconds),
            limit_per_second=_finite_or_none(limit),
        )

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        self._emit(
            "progress",
            done=snap.done,
            total=snap.total,
            rejected=snap.rejected,
            failed=snap.failed,
            retrying=snap.retrying,
            rate_per_second=_finite_or_none(round(snap.rate, 3)),
            limit_per_second=_finite_or_none(round(snap.limit, 3)),
            eta_seconds=None if snap.eta is None else round(snap.eta, 1),
            by_status=dict(snap.by_status),
        )

    def _on_message(self, text: str, level: int) -> None:
        self._emit("message", level=logging.getLevelName(level).lower(), message=text)

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self._emit(
            "finish",
            summary=dict(summary),
            elapsed_seconds=round(snap.elapsed, 3),
            average_per_second=_finite_or_none(round(snap.average, 3)),
        )


class _QuietOnBrokenPipe(Console):
    """A console that goes quiet when its reader goes away.

    rich's default answer to a ``BrokenPipeError`` is to point stdout at /dev/null and raise
    ``SystemExit(1)``: right for a pager, wrong for a payroll run whose progress is a courtesy
    (and whose ``--json`` summary is on stdout).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True


#: Below this many columns the bar is dropped and the stats use short words, so the counts
#: and the ETA are never the part cut off.
NARROW_COLUMNS = 80


class RichReporter(CountingReporter):
    """A live progress bar (done, rejected, failed, retrying, rate against limit, ETA) and a
    summary table at the end, drawn on ``console`` (the CLI gives it one on stderr).

    ``auto_refresh=False`` redraws only on events, which is what tests want. Every drawing is
    best effort: a broken stream never raises into the run.
    """

    def __init__(
        self,
        console: Console,
        *,
        clock: Clock = time.monotonic,
        auto_refresh: bool = True,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(clock=clock, redact=redact)
        self._console = console
        self._auto_refresh = auto_refresh
        self._narrow = console.width < NARROW_COLUMNS
        columns = (
            (TextColumn("{task.fields[stats]}", markup=False),)
            if self._narrow
            else (
                TextColumn("{task.description}"),
                BarColumn(bar_width=None if console.width >= 120 else 20),
                TextColumn("{task.fields[stats]}", markup=False),
            )
        )
        # No stdout/stderr redirection: a piped stdout must not end up inside the stderr display.
        self._progress = Progress(
            *columns,
            console=console,
            auto_refresh=auto_refresh,
            redirect_stdout=False,
            redirect_stderr=False,
            get_time=clock,
        )
        self._task: TaskID | None = None

    def _safely(self, draw: Callable[[], object]) -> None:
        try:
            draw()
        except (OSError, ValueError, SystemExit):
            # SystemExit: an older rich's broken-pipe handling; the run goes on regardless.
            self._console.quiet = True

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        sentence = self._start_sentence(total, estimate_seconds, limit)
        self._safely(lambda: self._console.print(Text("Starting: " + sentence)))
        self._task = self._progress.add_task(
            "rows", total=total, completed=self._tally.earlier, stats=""
        )
        self._safely(self._progress.start)
        self._on_change()

    def _on_change(self) -> None:
        if self._task is None:
            return
        snap = self._tally.snapshot()
        stats = narrow_stats_text(snap) if self._narrow else stats_text(snap)
        self._progress.update(self._task, completed=snap.done, stats=stats)
        if not self._auto_refresh:
            self._safely(self._progress.refresh)  # else the refresh thread redraws 10 times/s

    def _on_message(self, text: str, level: int) -> None:
        label = logging.getLevelName(level).lower()
        # Text, not markup: a message like "[REDACTED]" must print as written.
        line = Text(f"{label}: {text}", style=_LEVEL_STYLES.get(level, ""))
        self._safely(lambda: self._progress.console.print(line))

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self.close()
        self._safely(lambda: self._console.print(_summary_table(summary, snap)))
        self._safely(lambda: self._console.print(Text(finish_sentence(summary, snap))))

    def close(self) -> None:
        """Stop the live display (and its refresh thread)."""
        self._safely(self._progress.stop)


def _summary_table(summary: Mapping[str, int], snap: ProgressSnapshot) -> Table:
    average = format_average(snap.average, snap.limit)
    table = Table(title=f"Summary ({format_duration(snap.elapsed)}, average {average})")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for label, count in summary_rows(summary):
        table.add_row(Text(label), str(count))
    table.add_section()
    table.add_row("total", str(sum(summary.values())))
    return table


def make_reporter(
    json_logs: bool,
    stream: TextIO,
    *,
    clock: Clock = time.monotonic,
    redact: Callable[[str], str] | None = None,
) -> Reporter:
    """The reporter the CLI should use: JSON lines if asked, a rich bar on a terminal, plain
    lines otherwise. ``redact`` scrubs message texts (pass ``Redactor.redact``)."""
    if json_logs:
        return JsonReporter(stream, clock=clock, redact=redact)
    if _is_terminal(stream):
        return RichReporter(_QuietOnBrokenPipe(file=stream), clock=clock, redact=redact)
    return PlainReporter(stream, clock=clock, redact=redact)


def banner_printer(
    json_logs: bool, stream: TextIO, *, wall_clock: Clock = time.time
) -> Callable[[str], None]:
    """How the command line shows what the engine announces before a run (the sandbox
    banner, ``engine.target.Announce``): ``*** text ***`` on ``stream``, or with ``--json-logs``
    a ``message`` event at level ``warning``, as ``JsonReporter`` writes them (every line of
    a JSON stream must parse)."""

    def show(text: str) -> None:
        if not json_logs:
            write_best_effort(stream, f"*** {text} ***\n")
            return
        line = json_line("message", wall_clock(), level="warning", message=text)
        write_best_effort(stream, line)

    return show


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
