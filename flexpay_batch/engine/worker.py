"""One row through the API: ``RowWorker`` turns a task into an outcome, ``transition`` journals it.

::

    worker = RowWorker(job, api, reporter, summary)
    outcome = await worker.process(task)          # never raises for a row-level problem
    writer.record_nowait(transition(outcome))

One journal record per row, once it has its outcome: the row's registration (its keys, the
time its first attempt left) travels with the outcome. Nothing needs committing before a
send: the idempotency key is a pure function of the row, so a crash before the record is
committed leaves the row pending and resume re-sends it under the same key (the server
replays its first answer).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from flexpay_batch.api.retry.loop import Attempts
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.states import UNVERIFIED, RowStatus
from flexpay_batch.engine.progress import Reporter
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.jobs.base import RowJob, RowOutcome, RowRejection, RowTask
from flexpay_batch.journal.transitions import Done, Failed, Register, Rejected, Transition


class RowWorker:
    """Turns one ``RowTask`` into one ``RowOutcome``; never raises for a row-level problem."""

    def __init__(
        self,
        job: RowJob,
        api: ApiSession,
        reporter: Reporter,
        summary: RunSummary,
        known_ids: Mapping[str, int] | None = None,
        *,
        on_abandoned: Callable[[Transition], None] | None = None,
    ) -> None:
        """``known_ids``: server id → row already recorded in the journal (on resume), so an
        id the server hands to a second row is caught across runs too. ``on_abandoned`` is
        given the row's registration, in flight, when its processing is cut off (cancelled
        at the end of a stop's grace, or a fatal error): its request may have left, and the
        journal should say so rather than call the row unsent. It must not wait."""
        self._job = job
        self._on_abandoned = on_abandoned
        self._api = api
        self._reporter = reporter
        self._summary = summary
        # In memory for this run, seeded from the journal: one dict lookup per row instead of
        # a journal query on the hot path, and the writer's group commits may not yet hold
        # the ids of rows finished a moment ago.
        self._ids: dict[str, int] = dict(known_ids or {})

    async def process(self, task: RowTask) -> RowOutcome:
        if task.rejection is not None:
            return _rejected_locally(task, task.rejection)
        # Attempt 1 leaves now (the journal's first_sent_at); recorded with the outcome.
        attempts = Attempts()
        attempts.sent_at = time.time()
        try:
            return await self._send(task, attempts)
        except errors.Conflict as err:
            existing = self._job.existing_id(err)
            if existing:
                return self._succeeded(
                    task, RowStatus.ALREADY_EXISTED, existing, err.request_id, attempts
                )
            return _rejected_by_server(task, err, attempts)
        except errors.RowRejected as err:
            return _rejected_by_server(task, err, attempts)
        except errors.RetryableError as err:
            return _failed(task, err, attempts)
        except errors.UnusableReply as err:
            return _unverified(task, err.message, err.request_id, attempts)
        except BaseException:
            if self._on_abandoned is not None:
                self._on_abandoned(_in_flight(task, attempts))
            raise

    async def _send(self, task: RowTask, attempts: Attempts) -> RowOutcome:
        done = self._job.already_done(task)
        if done:
            return _outcome(task, attempts, RowStatus.ALREADY_EXISTED, server_id=done)
        if task.look_up_first:
            existing = await self._job.look_up(self._api, task)
            if existing:
                return self._succeeded(task, RowStatus.ALREADY_EXISTED, existing, None, attempts)
        # "retrying N" on the progress line counts rows waiting to retry now: +1 at a row's
        # first retry, -1 when it ends either way (not one per retry, which only grows).
        waiting = False

        def on_retry(attempt: int, error: errors.RetryableError, delay: float) -> None:
            nonlocal waiting
            self._summary.retries += 1
            if not waiting:
                waiting = True
                self._reporter.retrying(1)

        try:
            reply = await self._api.call(
                lambda: self._job.send(self._api.client, task),
                attempts=attempts,
                on_retry=on_retry,
            )
        finally:
            if waiting:
                self._reporter.retrying(-1)
        status = RowStatus.REPLAYED if reply.replayed else RowStatus.CREATED
        return self._succeeded(task, status, self._job.server_id(reply), reply.request_id, attempts)

    def _succeeded(
        self,
        task: RowTask,
        status: RowStatus,
        server_id: str | None,
        request_id: str | None,
        attempts: Attempts,
    ) -> RowOutcome:
        """The success outcome, or an unverified failure when the id cannot be trusted."""
        if server_id is None or not usable_server_id(server_id):
            what = f"HTTP 2xx ({status.value}) without a usable id"
            return _unverified(task, what, request_id, attempts)
        owner = self._ids.setdefault(server_id, task.row)
        if owner != task.row:
            what = f"HTTP 2xx ({status.value}) with the id already recorded for row {owner}"
            return _unverified(task, what, request_id, attempts)
        return _outcome(task, attempts, status, server_id=server_id, request_id=request_id)


def _outcome(
    task: RowTask,
    attempts: Attempts,
    status: RowStatus,
    *,
    server_id: str | None = None,
    field: str | None = None,
    code: str | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> RowOutcome:
    """The outcome of a row that was sent (or was about to be): with its registration."""
    # Positional, in field order: one per row, and a frozen dataclass's keyword call costs
    # more than the object itself.
    return RowOutcome(
        task.row,
        status,
        server_id,
        field,
        code,
        reason,
        request_id,
        attempts.count,
        task.row_key,
        task.body_hash or None,
        task.idempotency_key or None,
        attempts.sent_at,
    )


def _rejected_locally(task: RowTask, rejection: RowRejection) -> RowOutcome:
    return RowOutcome(
        task.row,
        RowStatus.REJECTED,
        field=rejection.field,
        code=rejection.code,
        reason=rejection.reason,
        row_key=task.row_key,
    )


def _rejected_by_server(task: RowTask, err: errors.ApiError, attempts: Attempts) -> RowOutcome:
    status = f"HTTP {err.status}" if err.status else "the server"
    return _outcome(
        task,
        attempts,
        RowStatus.REJECTED,
        field=err.field,
        code=err.code or str(err.status),
        reason=f"{status}: {err.message}",
        request_id=err.request_id,
    )


def _failed(task: RowTask, err: errors.RetryableError, attempts: Attempts) -> RowOutcome:
    unknown = (
        "; the outcome is unknown, resume re-sends it under the same key"
        if attempts.indeterminate
        else "; resume will try it again"
    )
    return _outcome(
        task,
        attempts,
        RowStatus.FAILED,
        code=err.code or (str(err.status) if err.status else "failed"),
        reason=f"gave up after {attempts.count} attempts: {err.message}{unknown}",
        request_id=err.request_id,
    )


#: What a server id may look like: short, printable, no spaces or markup. Anything else (an
#: empty id, a number, an object, a scrubbed token) cannot name the row's object.
_USABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")


def usable_server_id(value: object) -> bool:
    """True when ``value`` is a string that can be the id of a created object."""
    return isinstance(value, str) and _USABLE_ID.fullmatch(value) is not None


def _unverified(task: RowTask, what: str, request_id: str | None, attempts: Attempts) -> RowOutcome:
    return _outcome(
        task,
        attempts,
        RowStatus.FAILED,
        code=UNVERIFIED,
        reason=(
            f"the server answered {what}; the row may have been applied, so it is not "
            "counted as done: resume looks it up before sending it again"
        ),
        request_id=request_id,
    )


def _in_flight(task: RowTask, attempts: Attempts) -> Register:
    """The registration of a row whose request may have left and has no outcome."""
    return Register(
        row=task.row,
        row_key=task.row_key,
        body_hash=task.body_hash or None,
        idempotency_key=task.idempotency_key or None,
        attempt=max(1, attempts.count),
        sent_at=attempts.sent_at,
    )


def _registration(outcome: RowOutcome) -> Register | None:
    """The row's registration: marked in flight (attempt 1 at ``sent_at``) when it was sent."""
    if not outcome.row_key:
        return None
    # Positional (row, row_key, body_hash, idempotency_key, attempt, sent_at): once per row.
    return Register(
        outcome.row,
        outcome.row_key,
        outcome.body_hash,
        outcome.idempotency_key,
        0 if outcome.sent_at is None else 1,
        outcome.sent_at,
    )


def transition(outcome: RowOutcome) -> Transition:
    """The journal record of ``outcome``: the row's registration (when the outcome carries its
    row key) and its result in one transition (rejected and failed rows keep their request
    id; a row that took effect keeps its status word and request id)."""
    registration = _registration(outcome)
    if outcome.status is RowStatus.REJECTED:
        return Rejected(
            row=outcome.row,
            field=outcome.field,
            code=outcome.code or "rejected",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
            registration=registration,
        )
    if outcome.status is RowStatus.FAILED:
        return Failed(
            row=outcome.row,
            code=outcome.code or "failed",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
            registration=registration,
        )
    # Positional (row, server_id, status, request_id, registration): the usual row.
    return Done(outcome.row, outcome.server_id, outcome.status, outcome.request_id, registration)


__all__ = ["RowWorker", "transition", "usable_server_id"]
