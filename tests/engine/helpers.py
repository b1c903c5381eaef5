"""What the engine's unit tests share: a row ready for a ``RowWorker``."""

from __future__ import annotations

from flexpay_batch.jobs.base import RowTask


def row_task(row: int) -> RowTask:
    """Row ``row`` of a file, planned: identity ``E<row>``, row key ``rk<row>``, body hash
    ``bh<row>`` and idempotency key ``fpb_<row>``; an empty body."""
    return RowTask(
        row=row,
        line=row,
        identity=f"E{row}",
        row_key=f"rk{row}",
        body={},
        body_hash=f"bh{row}",
        idempotency_key=f"fpb_{row}",
    )
