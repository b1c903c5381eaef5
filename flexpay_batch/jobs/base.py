"""What every row job has in common: the row task, its outcome, and the job interface.

A job (onboarding, payroll) says what one valid row becomes on the API; the runner does the
rest (reading, journal, limits, retries, outputs) the same way for every job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.files import ResultStatus as Status
from flexpay_batch.input.models import RowModel


@dataclass(frozen=True, slots=True)
class RowTask:
    """One row ready to send. ``body`` holds personal data: it lives in memory only."""

    row: int
    line: int
    identity: str
    row_key: str
    body: Mapping[str, Any]
    body_hash: str
    idempotency_key: str
    look_up_first: bool = False
    rejection: RowRejection | None = None


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A row refused before sending (validation, duplicates, unknown references)."""

    field: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """How one row ended in this attempt of the run. Holds no personal data."""

    row: int
    status: Status
    server_id: str | None = None
    field: str | None = None
    code: str | None = None
    reason: str | None = None
    request_id: str | None = None
    attempts: int = 0

    @property
    def settled(self) -> bool:
        return self.status in {
            Status.CREATED,
            Status.REPLAYED,
            Status.ALREADY_EXISTED,
            Status.REJECTED,
        }


class RowJob(Protocol):
    """The part of a job that differs between onboarding and payroll."""

    kind: ClassVar[str]
    model: ClassVar[type[RowModel]]

    def parameters(self) -> dict[str, Any]:
        """Job parameters to store in the journal (no personal data) for ``resume``."""
        ...

    async def prepare(self, api: ApiSession, secret: bytes) -> None:
        """Pre-flight reads and run-level writes before any row is sent (retried by ``api``)."""
        ...

    def check(self, model: RowModel) -> RowRejection | None:
        """Reject a valid row that refers to something the server does not have."""
        ...

    def body_for(self, model: RowModel) -> Mapping[str, Any]:
        """The request body for this row."""
        ...

    def amount_of(self, model: RowModel) -> Decimal:
        """The money this row moves (for control totals); zero for onboarding."""
        ...

    async def send(self, client: FlexPayClient, task: RowTask) -> ApiResponse:
        """One attempt of this row's write, carrying ``task.idempotency_key`` (the runner
        retries it with ``ApiSession.call``)."""
        ...

    def server_id(self, reply: ApiResponse) -> str:
        """The server's id of what the write created."""
        ...

    def existing_id(self, conflict: errors.Conflict) -> str | None:
        """The id of the object that already exists, if the 409 means "already done"."""
        ...

    async def look_up(self, api: ApiSession, task: RowTask) -> str | None:
        """Find this row's object on the server (for outcomes unknown past the key TTL)."""
        ...


__all__ = ["RowJob", "RowOutcome", "RowRejection", "RowTask", "Status"]
