"""What every row job has in common: the row task, its outcome, the job interface and its spec.

A job kind (onboarding, payroll) is one module that defines a ``RowJob`` class, saying what one
valid row becomes on the API, and one ``JobSpec`` value, saying everything else the system needs
to know about the kind (its row model, its columns, how results.csv names its rows, how to
rebuild the job from its stored parameters). ``jobs.registry`` lists the specs; the engine does
the rest (reading, journal, limits, retries, outputs) the same way for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from flexpay_batch.core import errors
from flexpay_batch.core.states import RowStatus
from flexpay_batch.input.models import RowModel
from flexpay_batch.input.records import RowProblem

# Types only: validate and status load the jobs without aiohttp (start-up cost).
if TYPE_CHECKING:
    from flexpay_batch.api.client import ApiResponse, FlexPayClient
    from flexpay_batch.api.session import ApiSession


@dataclass(frozen=True, slots=True)
class RowTask:
    """One row ready to send. ``body`` (and ``wire_body``) hold personal data: memory only.

    ``wire_body`` is ``body`` as canonical JSON bytes, whose SHA-256 is ``body_hash``; a job
    sends these bytes rather than re-serialising ``body`` on the event loop (empty when the
    task is a rejection).
    """

    row: int
    line: int
    identity: str
    row_key: str
    body: Mapping[str, Any]
    body_hash: str
    idempotency_key: str
    look_up_first: bool = False
    rejection: RowRejection | None = None
    wire_body: bytes = b""


#: A row refused before sending (validation, duplicates, unknown references): the same three
#: facts as a record the reader could not read (a field, a code, a reason quoting no value).
RowRejection = RowProblem


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """How one row ended in this attempt of the run. Holds no personal data.

    ``row_key``, ``body_hash`` and ``idempotency_key`` are the row's task's (hashes only),
    ``sent_at`` the epoch second its first attempt left (None when nothing was sent): what
    the journal registers the row with, in the same record as its outcome.
    """

    row: int
    status: RowStatus
    server_id: str | None = None
    field: str | None = None
    code: str | None = None
    reason: str | None = None
    request_id: str | None = None
    attempts: int = 0
    row_key: str = ""
    body_hash: str | None = None
    idempotency_key: str | None = None
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class FinishReport:
    """What a job's run-level finish did.

    ``messages`` are sentences for the operator (no personal data); ``incomplete`` is True
    when every row went through but the job's own work is not done (a payroll run left in
    draft because its figures differ), which makes the run exit 1.
    """

    messages: tuple[str, ...] = ()
    incomplete: bool = False


class Meta(Protocol):
    """Durable run-level facts (the journal's key/value table), behind a tiny interface."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class JobContext:
    """What the engine hands a kind's ``JobSpec.build`` besides the stored parameters."""

    meta: Meta


class RowJob(Protocol):
    """The part of a run that differs between job kinds; the engine calls nothing else.

    Call order: ``prepare`` once; then ``check``, ``encoded_body_for`` and ``amount_of`` for
    each valid row (in file order, in the reader thread) interleaved with ``send`` (and
    ``look_up``, ``server_id``, ``existing_id``) for the rows being sent; then ``finish`` once.

    A dry run (``--dry-run``) calls ``prepare_read_only`` instead of ``prepare``, then
    ``check``, ``amount_of`` and ``planned_request`` for each valid row, then
    ``forecast_finish``: reads only, nothing sent.
    """

    async def prepare(self, api: ApiSession, secret: bytes) -> None:
        """Pre-flight reads and run-level writes before any row is sent (retried by ``api``)."""
        ...

    def check(self, model: RowModel) -> RowRejection | None:
        """Reject a valid row that refers to something the server does not have."""
        ...

    def body_for(self, model: RowModel) -> Mapping[str, Any]:
        """The request body for this row."""
        ...

    def encoded_body_for(self, model: RowModel) -> tuple[Mapping[str, Any], bytes, str]:
        """``body_for(model)`` with what ``core.keys.encode_body`` makes of it (its canonical
        JSON bytes and their SHA-256): what planning calls, once per valid row."""
        ...

    def amount_of(self, model: RowModel) -> Decimal:
        """The money this row moves (for control totals); zero for onboarding."""
        ...

    async def send(self, client: FlexPayClient, task: RowTask) -> ApiResponse:
        """One attempt of this row's write, carrying ``task.idempotency_key`` (the runner
        retries it with ``ApiSession.call``)."""
        ...

    def server_id(self, reply: ApiResponse) -> str | None:
        """The server's id of what the write created; None when the reply has no string id
        (the engine then records the row as unverified, not done)."""
        ...

    def existing_id(self, conflict: errors.Conflict) -> str | None:
        """The id of the object that already exists, if the 409 means "already done"."""
        ...

    async def look_up(self, api: ApiSession, task: RowTask) -> str | None:
        """Find this row's object on the server (for outcomes unknown past the key TTL)."""
        ...

    def already_done(self, task: RowTask) -> str | None:
        """The server's id when it already holds exactly this row (read in ``prepare``), so
        nothing is sent; None to send it."""
        ...

    async def finish(
        self, api: ApiSession, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """Run-level work after the last row (payroll: verify, then submit); may be a no-op.

        ``file_count`` and ``file_total`` are the file's valid rows and their amount;
        ``all_accepted`` is True when no row is rejected, failed or still open.
        """
        ...

    async def prepare_read_only(self, api: ApiSession) -> tuple[str, ...]:
        """``prepare``'s checks with reads only, for a dry run: no write, no journal.

        Afterwards ``check`` answers as in a real run. Returns sentences saying what the run
        would do before its rows (payroll: create the period's draft run, or adopt one).
        """
        ...

    def planned_request(self, model: RowModel) -> str | None:
        """In a dry run, for a row ``check`` passed: the request it would become
        (``"POST /employees"``), or None when the server already holds exactly this row."""
        ...

    def forecast_finish(
        self, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """In a dry run, after the last row: what ``finish`` would do, judged from what
        ``prepare_read_only`` read (arguments as for ``finish``)."""
        ...


def id_in_reply(reply: ApiResponse, field: str) -> str | None:
    """The server id ``field`` of a reply's body; None unless it is a string."""
    value = reply.body.get(field)
    return value if isinstance(value, str) else None


def id_of_existing(conflict: errors.Conflict, code: str, field: str) -> str | None:
    """The id ``field`` a 409 names when its ``code`` says the object exists already, else
    None (another conflict, or no string id)."""
    if conflict.code != code:
        return None
    existing = conflict.details.get(field)
    return existing if isinstance(existing, str) else None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job kind, as every part of the system outside its own module sees it.

    ``parameters`` (the job's settings, such as a payroll's pay period) are a JSON-able dict:
    the command line makes them, the journal stores them, and ``build`` turns them back into
    a job, for a fresh run and a resumed one alike.
    """

    #: The kind's name: the journal's ``kind``, the run directory's prefix, ``--kind``.
    name: str
    #: The pydantic model one input row is validated into.
    model: type[RowModel]
    #: The input file's columns (``input.columns``), in their usual order.
    columns: tuple[str, ...]
    #: Columns whose presence in a header means a file is of this kind (``validate`` guesses).
    marker_columns: frozenset[str]
    #: Input columns naming a row in results.csv; the first non-blank one is shown.
    reference_columns: tuple[str, ...]
    #: results.csv headers of the row's reference and of the server's id.
    reference_header: str
    server_id_header: str
    #: True when rows carry money: report.json then states the file's total amount.
    moves_money: bool
    #: Parameters a resumed run may change (none changes what a row sends).
    changeable_parameters: frozenset[str]
    #: Build the job from its stored parameters; raises ``errors.UsageError`` if they are bad.
    build: Callable[[Mapping[str, Any], JobContext], RowJob]
    #: True when a changed input file in a run directory begins a new job there (the old
    #: journal set aside) instead of being refused: safe only for kinds whose server state
    #: alone stops a row from applying twice (payroll: one run per period, one item per
    #: employee, adopted and reconciled).
    new_job_when_input_changes: bool = False
    #: The ``flexpay-batch`` command that runs the kind, when it is not ``name`` (messages
    #: that point at another kind's command name it).
    command: str | None = None
    #: True when a row an earlier job of the same file (before it was fixed) did is done for
    #: this one too, so fix and re-run records it as already existed instead of sending it
    #: (``engine.carryover``): onboarding, whose employee is its external id organisation-wide;
    #: not payroll, whose item belongs to one run.
    rows_carry_over: bool = False


__all__ = [
    "FinishReport",
    "JobContext",
    "JobSpec",
    "Meta",
    "RowJob",
    "RowOutcome",
    "RowRejection",
    "RowTask",
]
