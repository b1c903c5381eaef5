"""How each job of a bureau run ended (``JobOutcome``), and the exit code of the whole run.

::

    outcome = JobOutcome.from_summary(label, summary)       # or .from_error / .not_run
    overall_exit_code(outcomes, interrupted=False)          # 0, 1, or the gravest stop

The whole run exits like a single run: 0 every job done, 1 rows rejected or failed in some
job, else the gravest code a job stopped with, by ``SEVERITY`` (130 first when the operator
stopped the run).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flexpay_batch.bureau.manifest import in_manifest_words
from flexpay_batch.core import errors
from flexpay_batch.core.redact import format_exception_redacted, redact_text
from flexpay_batch.engine.request import RunSummary

#: Exit codes from the gravest down. 130: the operator stopped the run. 3: a job aborted
#: (authentication, scope, TLS: a person must act). 70: a bug. 5: this machine refused a
#: write. 2: a job's configuration or file is wrong. 4: the API kept failing (wait, then run
#: again). 1: rows rejected or failed. 0: all done.
SEVERITY: tuple[int, ...] = (130, 3, 70, 5, 2, 4, 1, 0)

_RESUME = "`flexpay-batch resume RUN_DIR`"

State = Literal["waiting", "running", "done", "incomplete", "stopped", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class JobLabel:
    """How a job is shown: its number in the manifest (from 1), organisation and kind."""

    number: int
    org: str
    kind: str

    def describe(self) -> str:
        return f"job {self.number} ({self.org}, {self.kind})"


@dataclass(frozen=True)
class JobOutcome:
    """One job's end: its state, exit code (as a single run's), counts and run directory.

    ``done`` every row done (exit 0) · ``incomplete`` rows rejected or failed, or a payroll
    left in draft (1) · ``stopped`` the run stopped early (its error's code) · ``failed`` it
    could not begin (its error's code) · ``skipped`` an earlier job of the organisation
    stopped · ``waiting`` never started (the bureau run was stopped first).
    """

    label: JobLabel
    state: State
    exit_code: int
    job_id: str = ""
    run_dir: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    summary: RunSummary | None = None
    #: The (redacted) sentence saying why the job stopped or failed, and what to do.
    error: str | None = None
    hint: str = ""
    #: The (redacted) traceback of the exception a failed job raised, for ``--debug``.
    traceback: str | None = field(default=None, repr=False)

    @classmethod
    def from_summary(cls, label: JobLabel, job_id: str, summary: RunSummary) -> JobOutcome:
        code = summary.exit_code
        state: State = "stopped" if summary.stopped else "done" if code == 0 else "incomplete"
        error, hint = _explain(summary.stopped, summary.run_dir)
        return cls(
            label=label,
            state=state,
            exit_code=code,
            job_id=job_id,
            run_dir=summary.run_dir,
            counts={k: v for k, v in summary.journal_counts.items() if v},
            summary=summary,
            error=error,
            hint=hint,
        )

    @classmethod
    def from_error(
        cls, label: JobLabel, job_id: str, exc: BaseException, *, run_dir: Path | None = None
    ) -> JobOutcome:
        """The job raised ``exc`` instead of returning a summary (70 unless ours)."""
        code = exc.exit_code if isinstance(exc, errors.FlexPayBatchError) else 70
        error, hint = _explain(exc, run_dir)
        if error is not None:
            # The board shows the job's name before its error: once is enough.
            error = error.removeprefix(f"{label.describe()}: ")
        trace = format_exception_redacted(exc)
        return cls(label, "failed", code, job_id, run_dir, error=error, hint=hint, traceback=trace)

    @classmethod
    def not_run(cls, label: JobLabel, job_id: str, state: State, why: str) -> JobOutcome:
        """A job that never started: ``skipped`` (exit 1) or ``waiting`` (130: stopped)."""
        return cls(label, state, 1 if state == "skipped" else 130, job_id, error=why)

    @property
    def stopped(self) -> bool:
        """Whether the job ended before finishing its rows (its organisation's next waits)."""
        return self.state in ("stopped", "failed", "skipped", "waiting")


def _explain(exc: BaseException | None, run_dir: Path | None) -> tuple[str | None, str]:
    if exc is None:
        return None, ""
    if not isinstance(exc, errors.FlexPayBatchError):
        return f"internal error ({type(exc).__name__}); re-run with --debug for details", ""
    # A bureau job continues with the whole manifest (its other jobs are skipped if done).
    hint = exc.hint.replace(_RESUME, f"the same `flexpay-batch run MANIFEST` (or {_RESUME})")
    if run_dir is not None:
        hint = hint.replace("RUN_DIR", shlex.quote(str(run_dir)))
    return redact_text(in_manifest_words(exc.message)), redact_text(in_manifest_words(hint))


def overall_exit_code(outcomes: Sequence[JobOutcome], *, interrupted: bool) -> int:
    """The bureau run's exit code: 130 if ``interrupted``, else the gravest job's."""
    if interrupted:
        return 130
    codes = {outcome.exit_code for outcome in outcomes}
    for code in SEVERITY:
        if code in codes:
            return code
    return max(codes, default=0)


__all__ = ["SEVERITY", "JobLabel", "JobOutcome", "State", "overall_exit_code"]
