"""One display for every job of a bureau run: a live board on a terminal, plain lines otherwise.

::

    board = make_board(labels, stream=sys.stderr)
    board.open()
    reporter = board.reporter(label)          # an engine ``Reporter`` for that job's run
    ...                                       # run_job(..., reporter=reporter)
    board.ended(outcome)
    board.close(outcomes)                     # the table: one line per job

Each job's run reports through its own ``JobReporter`` (the engine's ``Reporter`` protocol),
which only updates that job's ``JobProgress``; the board draws them all. The rich board shows
one line per running job (organisation, kind, done/total, rejected, failed, rate against the
limit) and an overall line, redrawn a few times a second; the plain board writes a line per
job at most every ``interval`` seconds; ``JsonBoard`` (``--json-logs``) one JSON object per
event. Messages name their job and are redacted. Time comes from an injected clock
(monotonic seconds).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flexpay_batch.bureau.board import Board
from flexpay_batch.bureau.manifest import in_manifest_words
from flexpay_batch.bureau.outcome import JobLabel, JobOutcome, State
from flexpay_batch.cli.progress_base import Clock, estimate_eta, write_best_effort
from flexpay_batch.core.formatting import format_duration, format_rate, summary_rows
from flexpay_batch.core.redact import redact_text
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import Reporter, RunStart, SilentReporter

#: The end-of-run table's count columns: (heading, row status).
COUNT_COLUMNS: tuple[tuple[str, RowStatus], ...] = (
    ("created", RowStatus.CREATED),
    ("existed", RowStatus.ALREADY_EXISTED),
    ("replayed", RowStatus.REPLAYED),
    ("rejected", RowStatus.REJECTED),
    ("failed", RowStatus.FAILED),
)


@dataclass
class JobProgress:
    """One job's counts as its run reports them (rates in rows per second)."""

    label: JobLabel
    state: State = "waiting"
    total: int | None = None
    earlier: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    retrying: int = 0
    rate: float = 0.0
    limit: float = 0.0
    paused_until: float | None = None

    @property
    def done(self) -> int:
        return self.earlier + sum(self.by_status.values())

    def line(self) -> str:
        """``acme onboard 120/500 · rejected 0 · failed 0 · 97.2/min of 100/min · eta 4m03s``."""
        total = "?" if self.total is None else str(self.total)
        parts = [
            f"{self.label.org} {self.label.kind} {self.done}/{total}",
            f"rejected {self.by_status[RowStatus.REJECTED]}",
            f"failed {self.by_status[RowStatus.FAILED]}",
        ]
        if self.retrying:
            parts.append(f"retrying {self.retrying}")
        if self.limit > 0:
            parts.append(format_rate(self.rate, self.limit))
        if self.paused_until is not None:
            parts.append("paused by the server")
        elif self.total is not None and self.done < self.total:
            eta = estimate_eta(self.total - self.done, self.rate, self.limit)
            parts.append(f"eta {format_duration(eta)}")
        return " · ".join(parts)


class JobReporter(SilentReporter):
    """The engine ``Reporter`` of one job: updates its ``JobProgress``, tells the board.

    Its ``finish`` is silent: the board shows the job's end when the bureau knows its outcome
    (``ended``); nothing to ``close`` either, the board outlives the job.
    """

    def __init__(self, progress: JobProgress, board: _BoardBase) -> None:
        self._progress = progress
        self._board = board

    def start(self, run: RunStart) -> None:
        progress = self._progress
        progress.total, progress.limit = run.total_rows, run.limit_per_second
        progress.earlier = run.done_rows
        progress.state = "running"
        self._board.started(progress, run.estimate_seconds)

    def row_done(self, status: RowStatus) -> None:
        self._progress.by_status[status] += 1
        self._board.changed(self._progress)

    def retrying(self, delta: int) -> None:
        self._progress.retrying = max(0, self._progress.retrying + delta)
        self._board.changed(self._progress)

    def rate(self, current_per_second: float) -> None:
        self._progress.rate = max(0.0, current_per_second)
        self._board.changed(self._progress)

    def paused(self, until_epoch: float | None) -> None:
        self._progress.paused_until = until_epoch
        self._board.changed(self._progress)

    def message(self, text: str, level: int = logging.INFO) -> None:
        self._board.job_message(self._progress.label, in_manifest_words(text), level)


class _BoardBase:
    """The job progress every board keeps; subclasses draw it."""

    def __init__(self, labels: Sequence[JobLabel], *, clock: Clock) -> None:
        self._clock = clock
        self._started_at = clock()
        self._jobs = {label.number: JobProgress(label) for label in labels}

    def open(self) -> None:
        self._started_at = self._clock()

    def reporter(self, label: JobLabel) -> Reporter:
        return JobReporter(self._jobs[label.number], self)

    def ended(self, outcome: JobOutcome) -> None:
        progress = self._jobs[outcome.label.number]
        progress.state = outcome.state
        self._show_end(progress, outcome)

    def message(self, text: str, level: int = logging.INFO) -> None:
        self._show_message(redact_text(text), level)

    def job_message(self, label: JobLabel, text: str, level: int) -> None:
        """A sentence from one job's run, shown with the job's name."""
        self.message(f"{label.describe()}: {text}", level)

    def overall(self) -> str:
        """``jobs: 2 running, 1 done, 3 waiting · rows 300/1500 · 3.2 rows/s · 2m03s``."""
        states = Counter(job.state for job in self._jobs.values())
        order: tuple[State, ...] = (
            "running",
            "done",
            "incomplete",
            "stopped",
            "failed",
            "skipped",
            "waiting",
        )
        jobs = ", ".join(f"{states[state]} {state}" for state in order if states[state])
        done = sum(job.done for job in self._jobs.values())
        totals = [job.total for job in self._jobs.values()]
        total = "?" if any(t is None for t in totals) else str(sum(t or 0 for t in totals))
        elapsed = format_duration(self._clock() - self._started_at)
        rate = sum(job.rate for job in self._jobs.values() if job.state == "running")
        return f"jobs: {jobs} · rows {done}/{total} · {_per_second(rate)} · {elapsed}"

    def started(self, progress: JobProgress, estimate_seconds: float | None) -> None:
        raise NotImplementedError

    def changed(self, progress: JobProgress) -> None:
        raise NotImplementedError

    def _show_end(self, progress: JobProgress, outcome: JobOutcome) -> None:
        raise NotImplementedError

    def _show_message(self, text: str, level: int) -> None:
        raise NotImplementedError


def _per_second(rate: float) -> str:
    return f"{rate:.3g} rows/s" if rate < 100 else f"{rate:.0f} rows/s"


def _counts_text(outcome: JobOutcome) -> str:
    return ", ".join(f"{label} {count}" for label, count in summary_rows(outcome.counts))


def _end_sentence(outcome: JobOutcome, *, error: bool = True) -> str:
    state = (
        outcome.state
        if outcome.exit_code in (0, 1)
        else f"{outcome.state} (exit {outcome.exit_code})"
    )
    text = f"{outcome.label.describe()}: {state}"
    if outcome.counts:
        text += f": {_counts_text(outcome)}"
    if error and outcome.error:
        text += f" — {outcome.error}"
    return text


class _StreamBoard(_BoardBase):
    """A board that writes lines to a stream: a job's progress at most once per ``interval``
    seconds, counted from its start or its last progress line."""

    def __init__(
        self, labels: Sequence[JobLabel], stream: TextIO, *, interval: float, clock: Clock
    ) -> None:
        super().__init__(labels, clock=clock)
        self._stream = stream
        self._interval = interval
        self._last: dict[int, float] = {}

    def _restart_interval(self, progress: JobProgress) -> None:
        self._last[progress.label.number] = self._clock()

    def _progress_due(self, progress: JobProgress) -> bool:
        """True (and the interval restarts) once ``interval`` seconds have passed."""
        now = self._clock()
        number = progress.label.number
        if now - self._last.get(number, now) < self._interval:
            return False
        self._last[number] = now
        return True


class PlainBoard(_StreamBoard):
    """Plain lines for logs and pipes: a job's start and end at once, its progress at most
    once per ``interval`` seconds, the overall line with each job's end."""

    def __init__(
        self,
        labels: Sequence[JobLabel],
        stream: TextIO,
        *,
        interval: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(labels, stream, interval=interval, clock=clock)

    def _line(self, text: str) -> None:
        write_best_effort(self._stream, text + "\n")

    def started(self, progress: JobProgress, estimate_seconds: float | None) -> None:
        self._restart_interval(progress)
        total = "an unknown number of" if progress.total is None else str(progress.total)
        earlier = f" ({progress.earlier} already settled)" if progress.earlier else ""
        self._line(
            f"start: {progress.label.describe()}: {total} rows{earlier}, "
            f"estimated {format_duration(estimate_seconds)}"
        )

    def changed(self, progress: JobProgress) -> None:
        if self._progress_due(progress):
            self._line("progress: " + progress.line())

    def _show_end(self, progress: JobProgress, outcome: JobOutcome) -> None:
        self._line("end: " + _end_sentence(outcome))
        self._line(self.overall())

    def _show_message(self, text: str, level: int) -> None:
        self._line(f"{logging.getLevelName(level).lower()}: {text}")

    def close(self, outcomes: Sequence[JobOutcome]) -> None:
        for outcome in outcomes:
            where = f" in {outcome.run_dir}" if outcome.run_dir is not None else ""
            self._line("summary: " + _end_sentence(outcome, error=False) + where)
        for line in problem_lines(outcomes):
            self._line(line)


class RichBoard(_BoardBase):
    """A live board on a terminal: a line per running job and an overall line; at the end a
    table of every job. ``auto_refresh=False`` redraws only on events (for tests)."""

    def __init__(
        self,
        labels: Sequence[JobLabel],
        console: Console,
        *,
        clock: Clock = time.monotonic,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(labels, clock=clock)
        self._console = console
        self._auto_refresh = auto_refresh
        self._live = Live(
            console=console,
            get_renderable=self.render,
            auto_refresh=auto_refresh,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _safely(self, draw: Callable[[], object]) -> None:
        try:
            draw()
        except (OSError, ValueError, SystemExit):
            self._console.quiet = True

    def render(self) -> RenderableType:
        """The live part: running jobs, then the overall line."""
        lines = [Text(job.line()) for job in self._jobs.values() if job.state == "running"]
        return Group(*lines, Text(self.overall(), style="bold"))

    def open(self) -> None:
        super().open()
        self._safely(self._live.start)

    def _redraw(self) -> None:
        if not self._auto_refresh:
            self._safely(self._live.refresh)

    def started(self, progress: JobProgress, estimate_seconds: float | None) -> None:
        self._redraw()

    def changed(self, progress: JobProgress) -> None:
        self._redraw()

    def _show_end(self, progress: JobProgress, outcome: JobOutcome) -> None:
        style = "" if outcome.exit_code == 0 else "yellow" if outcome.exit_code == 1 else "red"
        self._safely(lambda: self._live.console.print(Text(_end_sentence(outcome), style=style)))
        self._redraw()

    def _show_message(self, text: str, level: int) -> None:
        label = logging.getLevelName(level).lower()
        style = (
            "yellow" if level == logging.WARNING else "bold red" if level > logging.WARNING else ""
        )
        self._safely(lambda: self._live.console.print(Text(f"{label}: {text}", style=style)))

    def close(self, outcomes: Sequence[JobOutcome]) -> None:
        self._safely(self._live.stop)
        self._safely(lambda: self._console.print(outcome_table(outcomes)))
        problems = Text("\n".join(problem_lines(outcomes)), style="red")
        if problems:
            self._safely(lambda: self._console.print(problems))


def problem_lines(outcomes: Sequence[JobOutcome]) -> list[str]:
    """What stopped each job that stopped (exit 2 and up), and what to do about it."""
    lines = []
    for outcome in outcomes:
        if outcome.exit_code > 1 and outcome.error:
            lines.append(f"{outcome.label.describe()}: {outcome.error}")
            if outcome.hint:
                lines.append(f"  {outcome.hint}")
    return lines


def outcome_table(outcomes: Sequence[JobOutcome]) -> Table:
    """The end-of-run table: per job org, kind, counts, state and run directory."""
    table = Table(title="Bureau run")
    for heading in ("#", "org", "kind"):
        table.add_column(heading)
    for heading, _ in COUNT_COLUMNS:
        table.add_column(heading, justify="right")
    table.add_column("state")
    table.add_column("run directory", overflow="fold")
    for outcome in outcomes:
        state = (
            outcome.state
            if outcome.exit_code in (0, 1)
            else f"{outcome.state} ({outcome.exit_code})"
        )
        table.add_row(
            str(outcome.label.number),
            Text(outcome.label.org),
            outcome.label.kind,
            *(str(outcome.counts.get(status, 0)) for _, status in COUNT_COLUMNS),
            state,
            Text(str(outcome.run_dir) if outcome.run_dir is not None else "-"),
        )
    return table


class JsonBoard(_StreamBoard):
    """``--json-logs``: one JSON object per line, each with ``ts`` (UTC ISO 8601), ``event``
    and, for a job's events, ``job`` (number, org, kind).

    Events: ``start`` (total_rows, done_rows, estimate_seconds, limit_per_second),
    ``progress`` (done, total, rejected, failed, retrying, rate_per_second; at most once per
    ``interval`` seconds per job), ``message`` (level, message), ``end`` (state, exit_code,
    counts, error, run_dir) and ``finish`` (exit codes of every job). ``wall_clock`` gives the
    epoch seconds for ``ts``.
    """

    def __init__(
        self,
        labels: Sequence[JobLabel],
        stream: TextIO,
        *,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        super().__init__(labels, stream, interval=interval, clock=clock)
        self._wall_clock = wall_clock

    def _emit(self, event: str, label: JobLabel | None = None, **fields: object) -> None:
        moment = datetime.fromtimestamp(self._wall_clock(), UTC)
        record: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
        }
        if label is not None:
            record["job"] = {"number": label.number, "org": label.org, "kind": label.kind}
        record.update(fields)
        write_best_effort(self._stream, json.dumps(record, ensure_ascii=False) + "\n")

    def started(self, progress: JobProgress, estimate_seconds: float | None) -> None:
        self._restart_interval(progress)
        self._emit(
            "start",
            progress.label,
            total_rows=progress.total,
            done_rows=progress.earlier,
            estimate_seconds=_finite_or_none(estimate_seconds),
            limit_per_second=_finite_or_none(progress.limit),
        )

    def changed(self, progress: JobProgress) -> None:
        if not self._progress_due(progress):
            return
        self._emit(
            "progress",
            progress.label,
            done=progress.done,
            total=progress.total,
            rejected=progress.by_status[RowStatus.REJECTED],
            failed=progress.by_status[RowStatus.FAILED],
            retrying=progress.retrying,
            rate_per_second=_finite_or_none(round(progress.rate, 3)),
        )

    def _show_end(self, progress: JobProgress, outcome: JobOutcome) -> None:
        self._emit(
            "end",
            outcome.label,
            state=outcome.state,
            exit_code=outcome.exit_code,
            counts=dict(outcome.counts),
            error=outcome.error,
            run_dir=None if outcome.run_dir is None else str(outcome.run_dir),
        )

    def _show_message(self, text: str, level: int) -> None:
        self._emit("message", level=logging.getLevelName(level).lower(), message=text)

    def job_message(self, label: JobLabel, text: str, level: int) -> None:
        level_name = logging.getLevelName(level).lower()
        self._emit("message", label, level=level_name, message=redact_text(text))

    def close(self, outcomes: Sequence[JobOutcome]) -> None:
        self._emit("finish", jobs={str(o.label.number): o.exit_code for o in outcomes})


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no NaN or Infinity; an unknowable number is null.
    return value if value is not None and math.isfinite(value) else None


def make_board(labels: Sequence[JobLabel], stream: TextIO, *, json_logs: bool = False) -> Board:
    """JSON lines if asked, the live board on a terminal, plain lines otherwise."""
    if json_logs:
        return JsonBoard(labels, stream)
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        return RichBoard(labels, Console(file=stream))
    return PlainBoard(labels, stream)


__all__ = [
    "COUNT_COLUMNS",
    "Board",
    "JobProgress",
    "JobReporter",
    "JsonBoard",
    "PlainBoard",
    "RichBoard",
    "make_board",
    "outcome_table",
    "problem_lines",
]
