"""What one invocation was asked to do (``RunRequest``) and what it did (``RunSummary``).

::

    request = RunRequest(kind="onboarding", input_path=Path("people.csv"), settings=settings)
    summary = await run_job(request, base_url=..., ca_bundle=..., token=...)
    summary.exit_code   # 0 every row done, 1 some not (or the run is incomplete)

Plain values only: every other engine module imports these, and this module imports none of
them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from flexpay_batch.core import errors
from flexpay_batch.core.redact import redact_text
from flexpay_batch.core.settings import Settings
from flexpay_batch.core.states import RowStatus

#: The base URL and token fingerprint a ``--sandbox`` job is journaled with.
SANDBOX = "sandbox"


@dataclass(frozen=True)
class RunRequest:
    """Everything one invocation of ``onboard``, ``payroll`` or ``resume`` was asked to do.

    ``kind`` names a ``jobs.registry`` kind; ``parameters`` are that kind's job parameters
    (JSON-able, stored in the journal), from which the engine builds the job.
    """

    kind: str
    input_path: Path
    settings: Settings
    sandbox: bool = False
    encoding: str | None = None
    restart: bool = False
    retry_rejected: bool = False
    json_logs: bool = False
    label: str | None = None
    run_dir: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: With ``sandbox``: an onboarding file whose employees the simulator starts with.
    sandbox_employees: Path | None = None
    #: Continue a job with another token than the one it began with (e.g. after the first was
    #: revoked). The operator vouches it is of the same organisation: idempotency keys are
    #: scoped per organisation, so only then do re-sent rows replay instead of applying again.
    allow_token_change: bool = False
    #: The job secret to begin a new journal with, instead of fresh random bytes: a job that
    #: another host may take over derives it (``core.keys.derive_job_secret``) so both send
    #: every row under the same idempotency key. An existing journal keeps its own.
    job_secret: bytes | None = field(default=None, repr=False)


@dataclass
class FileTotals:
    """Figures about the whole input, gathered while the producer reads it."""

    rows: int = 0
    valid: int = 0
    amount: Decimal = field(default_factory=Decimal)
    rejected_locally: int = 0


@dataclass
class RunSummary:
    """What this invocation did; the basis of the report and the exit code.

    ``counts`` are this invocation's outcomes; ``journal_counts`` the journal's rows per state
    at the end (the whole job, earlier invocations included).
    """

    run_dir: Path
    counts: Counter[RowStatus] = field(default_factory=Counter)
    journal_counts: dict[str, int] = field(default_factory=dict)
    totals: FileTotals = field(default_factory=FileTotals)
    messages: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    throttled: int = 0
    retries: int = 0
    stopped: BaseException | None = None
    #: Every row went through but the job's own work is not done (a payroll run left in draft
    #: because its figures differ).
    job_incomplete: bool = False
    #: The input file's bytes differ at the end of the run from its start (rewritten mid-run):
    #: the outputs then come from the journal alone, and the run exits 1.
    input_changed: bool = False

    def stopped_json(self) -> dict[str, str] | None:
        """Why the run stopped early (None if it did not), for the JSON summary and the
        report; redacted, since an exception's text is the one part not built by us."""
        if self.stopped is None:
            return None
        return {"error": type(self.stopped).__name__, "message": redact_text(str(self.stopped))}

    @property
    def unsettled(self) -> int:
        """Rows of the job that are rejected or failed (those listed in rejects.csv)."""
        counts = self.journal_counts
        return counts.get(RowStatus.FAILED, 0) + counts.get(RowStatus.REJECTED, 0)

    @property
    def exit_code(self) -> int:
        """The stopping error's exit code; else 1 if any row or the job is not done, else 0."""
        if isinstance(self.stopped, errors.FlexPayBatchError):
            return self.stopped.exit_code
        if self.stopped is not None:
            return 1
        counts = self.journal_counts
        open_rows = counts.get(RowStatus.PENDING, 0) + counts.get(RowStatus.IN_FLIGHT, 0)
        incomplete = self.unsettled or open_rows or self.job_incomplete or self.input_changed
        return 1 if incomplete or self.totals.rows == 0 else 0


__all__ = ["SANDBOX", "FileTotals", "RunRequest", "RunSummary"]
