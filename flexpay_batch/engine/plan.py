"""Plan a run's rows: read and validate the whole input, and turn each unsettled row into a task.

::

    for task in plan_tasks(request, job, journal, skip=settled, look_up_first=False,
                           totals=summary.totals):
        ...   # task.idempotency_key is the same on every resume of this job

A task's row key and idempotency key derive from the job's secret and the row's identity and
body (``core.keys``), so nothing has to be journaled before a row is sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flexpay_batch.core.keys import idempotency_key, keyed_hash
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.request import FileTotals, RunRequest
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, validate_rows
from flexpay_batch.jobs.base import RowJob, RowRejection, RowTask
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.store import Journal


def plan_tasks(
    request: RunRequest,
    job: RowJob,
    journal: Journal,
    *,
    skip: set[int],
    look_up_first: bool,
    totals: FileTotals,
    look_up_rows: frozenset[int] = frozenset(),
) -> Iterator[RowTask]:
    """Read and validate every row; yield a task for each row not yet settled.

    Runs in the pipeline's reader thread. Every row is validated even when it is skipped, so
    duplicates and file totals are judged on the whole file, the same way on every resume.
    Rows in ``look_up_rows`` (unverified before) are looked up before sending even when
    ``look_up_first`` is False.
    """
    secret = journal.job.secret
    records = iter_records(request.input_path, encoding=request.encoding)
    source = str(request.input_path)
    model = job_spec(request.kind).model
    for item in validate_rows(records, model, source_name=source):
        totals.rows += 1
        if isinstance(item, Rejection):
            totals.rejected_locally += 1
            if item.row not in skip:
                yield _rejection_task(
                    item.row, item.line, secret, item.field, item.code, item.reason
                )
            continue
        problem = job.check(item.model)
        if problem is not None:
            totals.rejected_locally += 1
            if item.row not in skip:
                yield _rejection_task(
                    item.row, item.line, secret, problem.field, problem.code, problem.reason
                )
            continue
        totals.valid += 1
        totals.amount += job.amount_of(item.model)
        if item.row in skip:
            continue
        look_up = look_up_first or item.row in look_up_rows
        yield _send_task(request.kind, job, item.row, item.line, item.model, secret, look_up)


def _rejection_task(
    row: int, line: int, secret: bytes, field_name: str | None, code: str, reason: str
) -> RowTask:
    return RowTask(
        row=row,
        line=line,
        identity="",
        row_key=keyed_hash(secret, f"row:{row}"),
        body={},
        body_hash="",
        idempotency_key="",
        rejection=RowRejection(field_name, code, reason),
    )


def _send_task(
    kind: str,
    job: RowJob,
    row: int,
    line: int,
    model: Any,
    secret: bytes,
    look_up_first: bool,
) -> RowTask:
    identity = str(model.identity)
    # Serialised and hashed once here, in the reader thread: the bytes hashed are the bytes sent.
    body, wire_body, body_hash = job.encoded_body_for(model)
    # Positional, in field order (a frozen dataclass's keyword call costs more): once per row.
    return RowTask(
        row,
        line,
        identity,
        keyed_hash(secret, identity),
        body,
        body_hash,
        idempotency_key(secret, kind, identity, body_hash),
        look_up_first,
        None,
        wire_body,
    )


def keys_may_have_expired(journal: Journal, settings: Settings) -> bool:
    """True when an earlier attempt may be older than the server's key memory (with margin)."""
    return time.time() - journal.job.created_at > 0.9 * settings.key_ttl


__all__ = ["keys_may_have_expired", "plan_tasks"]
