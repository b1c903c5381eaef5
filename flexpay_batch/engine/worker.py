"""One row through the API: ``RowWorker`` turns a task into an outcome, ``transition`` journals it.

::

    worker = RowWorker(job, api, writer, reporter, summary)
    outcome = await worker.process(task)          # never raises for a row-level problem
    await writer.record(transition(outcome))

A row is registered (and marked in flight) in the journal before its first attempt, so a crash
leaves it "in flight" and resume re-sends it under the same idempotency key.
"""

from __future__ import annotations

import time

from flexpay_batch.api.retry.loop import Attempts
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import Reporter
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.jobs.base import RowJob, RowOutcome, RowRejection, RowTask
from flexpay_batch.journal.transitions import Done, Failed, Register, Rejected, Transition
from flexpay_batch.journal.writer import AsyncJournalWriter


class RowWorker:
    """Turns one ``RowTask`` into one ``RowOutcome``; never raises for a row-level problem."""

    def __init__(
        self,
        job: RowJob,
        api: ApiSession,
        writer: AsyncJournalWriter,
        reporter: Reporter,
        summary: RunSummary,
    ) -> None:
        self._job = job
        self._api = api
        self._writer = writer
        self._reporter = reporter
        self._summary = summary

    async def process(self, task: RowTask) -> RowOutcome:
        if task.rejection is not None:
            await self._writer.record(
                Register(row=task.row, row_key=task.row_key, body_hash=None, idempotency_key=None)
            )
            return _rejected_locally(task, task.rejection)
        # Registered and marked in flight (attempt 1) in one transition, one statement.
        await self._writer.record(
            Register(
                row=task.row,
                row_key=task.row_key,
                body_hash=task.body_hash or None,
                idempotency_key=task.idempotency_key or None,
                attempt=1,
                sent_at=time.time(),
            )
        )
        attempts = Attempts()
        try:
            return await self._send(task, attempts)
        except errors.Conflict as err:
            existing = self._job.existing_id(err)
            if existing:
                return RowOutcome(
                    task.row, RowStatus.ALREADY_EXISTED, server_id=existing, attempts=attempts.count
                )
            return _rejected_by_server(task, err, attempts)
        except errors.RowRejected as err:
            return _rejected_by_server(task, err, attempts)
        except errors.RetryableError as err:
            return _failed(task, err, attempts)

    async def _send(self, task: RowTask, attempts: Attempts) -> RowOutcome:
        if task.look_up_first:
            existing = await self._job.look_up(self._api, task)
            if existing:
                return RowOutcome(task.row, RowStatus.ALREADY_EXISTED, server_id=existing)
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
        return RowOutcome(
            task.row,
            RowStatus.REPLAYED if reply.replayed else RowStatus.CREATED,
            server_id=self._job.server_id(reply),
            request_id=reply.request_id,
            attempts=attempts.count,
        )


def _rejected_locally(task: RowTask, rejection: RowRejection) -> RowOutcome:
    return RowOutcome(
        task.row,
        RowStatus.REJECTED,
        field=rejection.field,
        code=rejection.code,
        reason=rejection.reason,
    )


def _rejected_by_server(task: RowTask, err: errors.ApiError, attempts: Attempts) -> RowOutcome:
    status = f"HTTP {err.status}" if err.status else "the server"
    return RowOutcome(
        task.row,
        RowStatus.REJECTED,
        field=err.field,
        code=err.code or str(err.status),
        reason=f"{status}: {err.message}",
        request_id=err.request_id,
        attempts=attempts.count,
    )


def _failed(task: RowTask, err: errors.RetryableError, attempts: Attempts) -> RowOutcome:
    unknown = (
        "; the outcome is unknown, resume re-sends it under the same key"
        if attempts.indeterminate
        else "; resume will try it again"
    )
    return RowOutcome(
        task.row,
        RowStatus.FAILED,
        code=err.code or (str(err.status) if err.status else "failed"),
        reason=f"gave up after {attempts.count} attempts: {err.message}{unknown}",
        request_id=err.request_id,
        attempts=attempts.count,
    )


def transition(outcome: RowOutcome) -> Transition:
    """The journal transition that records ``outcome`` (rejected and failed rows keep their
    request id; a row that took effect keeps its status word and request id)."""
    if outcome.status is RowStatus.REJECTED:
        return Rejected(
            row=outcome.row,
            field=outcome.field,
            code=outcome.code or "rejected",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
        )
    if outcome.status is RowStatus.FAILED:
        return Failed(
            row=outcome.row,
            code=outcome.code or "failed",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
        )
    return Done(
        row=outcome.row,
        server_id=outcome.server_id,
        status=outcome.status,
        request_id=outcome.request_id,
    )


__all__ = ["RowWorker", "transition"]
