"""What may happen to a row, as the journal records it: one frozen value per transition.

::

    Register(row=2, row_key=..., body_hash=..., idempotency_key=..., attempt=1, sent_at=t)
    Done(row=2, server_id="emp_123", status=RowStatus.CREATED, request_id="req_9")

The row's ``state`` column holds the words of ``core.states.RowStatus``::

    pending ──▶ in_flight(attempts) ──▶ created | replayed | already_existed (server_id)
       │            ▲    │        ╲──▶ rejected(field, code, reason)
       │            │    ▼
       │            └── failed(code, reason)     failed rows are retried on resume
       └──────────────▶ succeeded | rejected | failed   (look-ups, local validation)

A row's outcome may carry its ``registration`` (a ``Register``, usually with ``sent_at``): the
two are then recorded as one, exactly ``Register`` followed by the outcome. That is how the
engine journals a row, with one record once it has its outcome: nothing needs committing
before a send, since the idempotency key is a pure function of the row.

Transitions are monotone: a succeeded row never moves, a rejected one only through
``Journal.reset_rejected`` (``--retry-rejected``). A transition that would move a row
backwards, or that names a row never registered, is ignored and counted (see
``Journal.commit_batch``). Times are epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from flexpay_batch.core.states import SUCCEEDED, RowStatus

__all__ = ["Done", "Failed", "InFlight", "Register", "Rejected", "Transition"]


@dataclass(frozen=True, slots=True)
class Register:
    """Row ``row`` exists and is pending. A second Register of a known row is a no-op.

    ``body_hash`` and ``idempotency_key`` are None for rows that never get a request body
    (for instance rows rejected by local validation).

    With ``sent_at`` (epoch seconds) it also records that attempt ``attempt`` was sent, in
    one statement: exactly ``Register`` followed by ``InFlight(row, idempotency_key,
    attempt, at=sent_at)``. A known row that is still open (pending, in flight, failed) goes
    in flight; for a settled row it is ignored and counted, like that ``InFlight``.
    """

    row: int
    row_key: str
    body_hash: str | None
    idempotency_key: str | None
    attempt: int = 0
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    """Attempt ``attempt`` (1-based) of the row's request was sent at ``at`` (epoch seconds).

    The first key recorded for a row is kept; ``first_sent_at`` keeps the earliest send.
    """

    row: int
    idempotency_key: str
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class Done:
    """The row took effect on the server; ``status`` says how (one of ``SUCCEEDED``).

    ``request_id`` is the API's X-Request-Id of the response that settled it, if any.
    """

    row: int
    server_id: str | None
    status: RowStatus
    request_id: str | None = None
    #: Recorded just before this transition, in the same commit (one record per row).
    registration: Register | None = None

    def __post_init__(self) -> None:
        if self.status not in SUCCEEDED:
            raise ValueError(f"Done needs a succeeded status, not {self.status!r}")


@dataclass(frozen=True, slots=True)
class Rejected:
    """The row was refused for good; ``reason`` must not quote a personal value."""

    row: int
    field: str | None
    code: str
    reason: str
    #: The API's X-Request-Id of the refusing response, for support.
    request_id: str | None = None
    #: Recorded just before this transition, in the same commit (one record per row).
    registration: Register | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The row's retries ran out (outcome possibly unknown); a resume sends it again."""

    row: int
    code: str
    reason: str
    #: The API's X-Request-Id of the last failed attempt, if any.
    request_id: str | None = None
    #: Recorded just before this transition, in the same commit (one record per row).
    registration: Register | None = None


Transition = Register | InFlight | Done | Rejected | Failed
