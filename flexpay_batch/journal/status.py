"""Where a run stands, read from its journal by another process while the run goes on.

::

    snapshot = status_snapshot(run_dir)
    snapshot.counts[RowStatus.CREATED], snapshot.remaining, snapshot.succeeded_per_second

Read-only: the database is opened with ``mode=ro`` and nothing is written, not even an
upgrade, so a version 1 journal is read as it is (its ``done`` rows show as their outcome).
WAL lets the read run beside the writer's commits without waiting for them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from flexpay_batch.core.states import OPEN, SUCCEEDED, RowStatus
from flexpay_batch.journal.connection import connect_readonly
from flexpay_batch.journal.files import resolve_db
from flexpay_batch.journal.jobinfo import JobSummary, read_job
from flexpay_batch.journal.schema import READABLE_VERSIONS, sql_words, state_expression

__all__ = ["META_INPUT_ROWS", "RATE_WINDOW_SECONDS", "StatusSnapshot", "status_snapshot"]

#: Journal meta key: the input's row count, for ``status`` to say what is left. Defined here,
#: beside its reader, so ``flexpay-batch status`` starts without loading the engine and jobs.
META_INPUT_ROWS = "input_rows"

#: The window of ``StatusSnapshot.succeeded_per_second``, in seconds.
RATE_WINDOW_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """A consistent picture of a run, read from another process while the run goes on.

    ``succeeded_per_second`` counts rows that succeeded during the last minute (or since
    the job began, if that is shorter). ``remaining`` = pending + in_flight + failed.
    Times are epoch seconds.
    """

    job: JobSummary
    counts: Mapping[RowStatus, int]
    total: int
    remaining: int
    succeeded_per_second: float
    started_at: float
    updated_at: float
    taken_at: float
    meta: Mapping[str, str]


def status_snapshot(path: str | os.PathLike[str], *, now: float | None = None) -> StatusSnapshot:
    """Read a run's status without writing anything, even while its writer is committing.

    ``path`` is a run directory or a journal file; ``now`` (epoch seconds) defaults to the
    clock. The read happens in one transaction, so counts, rate and times agree with each
    other. Raises ``UsageError`` if there is no journal.
    """
    db = resolve_db(path)
    conn = connect_readonly(db)
    try:
        conn.execute("BEGIN")
        job = read_job(conn, db, with_secret=False, versions=READABLE_VERSIONS)
        status = state_expression(job.schema_version)
        taken_at = time.time() if now is None else now
        counts = dict.fromkeys(RowStatus, 0)
        for state, n in conn.execute(f"SELECT {status}, count(*) FROM rows GROUP BY 1"):  # noqa: S608
            counts[RowStatus(state)] = n
        (updated_at,) = conn.execute("SELECT updated_at FROM job WHERE id = 1").fetchone()
        window = max(1.0, min(RATE_WINDOW_SECONDS, taken_at - job.created_at))
        (succeeded_recently,) = conn.execute(
            f"SELECT count(*) FROM rows WHERE {status} IN {sql_words(SUCCEEDED)} "  # noqa: S608
            "AND updated_at >= ?",
            (taken_at - window,),
        ).fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta ORDER BY key"))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return StatusSnapshot(
        job=job.summary(),
        counts=counts,
        total=sum(counts.values()),
        remaining=sum(counts[s] for s in OPEN),
        succeeded_per_second=succeeded_recently / window,
        started_at=job.created_at,
        updated_at=updated_at,
        taken_at=taken_at,
        meta=meta,
    )
