"""What a queue worker records of a bureau job in Redis: its progress and its outcome.

::

    progress = JobProgress("acme-onboard-1a2b", say=print)   # the job run's Reporter
    progress.meta()              # {"rows_done": 120, "rows_total": 500, "rejected": 2, ...}
    Outcome.of(summary).result(progress)                      # the saq job's ``result``

Counts, an exit code, an error class name and a (redacted) message: never a row's content.
``enqueue --wait`` rebuilds the error from the class name, so it exits as the job stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flexpay_batch.core import errors
from flexpay_batch.core.redact import redact_text
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import RunStart, SilentReporter
from flexpay_batch.engine.request import RunSummary

Say = Callable[[str], None]


class JobProgress(SilentReporter):
    """The ``Reporter`` a worker gives each job: counts for the job's ``meta``; messages go to
    the worker's log, prefixed with the job's id. Retries, rates and pauses are not shown: the
    combined progress is rows done."""

    def __init__(self, label: str, say: Say) -> None:
        self._label = label
        self._say = say
        self.total: int | None = None
        self.done = 0
        self.rejected = 0
        self.failed = 0

    def start(self, run: RunStart) -> None:
        self.total = run.total_rows
        self.done = run.done_rows
        earlier = f" ({run.done_rows} settled earlier)" if run.done_rows else ""
        self._say(f"{self._label}: {run.total_rows} rows{earlier}")

    def row_done(self, status: RowStatus) -> None:
        self.done += 1
        self.rejected += status == RowStatus.REJECTED
        self.failed += status == RowStatus.FAILED

    def message(self, text: str, level: int = logging.INFO) -> None:
        self._say(f"{self._label}: {redact_text(text)}")

    def finish(self, summary: Mapping[str, int]) -> None:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(summary.items()))
        self._say(f"{self._label}: finished: {counts or 'no rows'}")

    def meta(self) -> dict[str, Any]:
        """The counts for the saq job's ``meta`` (no row's content)."""
        return {
            "rows_done": self.done,
            "rows_total": self.total,
            "rejected": self.rejected,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as stored in the saq job's ``result`` (counts and a message only)."""

    exit_code: int
    stopped: str | None = None
    message: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    run_dir: str | None = None

    @classmethod
    def of(cls, summary: RunSummary) -> Outcome:
        stopped = summary.stopped_json()
        return cls(
            exit_code=summary.exit_code,
            stopped=None if stopped is None else stopped["error"],
            message=None if stopped is None else stopped["message"],
            counts={k: v for k, v in summary.journal_counts.items() if v},
            run_dir=str(summary.run_dir),
        )

    @classmethod
    def failed(cls, exc: errors.FlexPayBatchError) -> Outcome:
        message = redact_text(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return cls(exit_code=exc.exit_code, stopped=type(exc).__name__, message=message)

    @property
    def interrupted(self) -> bool:
        return self.stopped == errors.RunInterrupted.__name__

    def result(self, progress: JobProgress) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "stopped": self.stopped,
            "message": self.message,
            "counts": self.counts,
            "run_dir": self.run_dir,
            "progress": progress.meta(),
        }


__all__ = ["JobProgress", "Outcome", "Say"]
