"""Read what an earlier job of the same file took effect on, for a new job to build on.

::

    earlier = read_done_rows(other_run_dir)   # None if there is no readable journal
    earlier.job.secret, earlier.server_ids[row_key]

Read-only and safe while that job's writer runs (like ``status``). Unlike ``status`` it reads
the job's secret: the row keys are keyed hashes, and only the secret lets a new job recognise
its own rows among them. Nothing read here leaves the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flexpay_batch.core import errors
from flexpay_batch.core.states import SUCCEEDED
from flexpay_batch.journal.connection import connect_readonly
from flexpay_batch.journal.files import resolve_db
from flexpay_batch.journal.jobinfo import JobInfo, read_job
from flexpay_batch.journal.schema import READABLE_VERSIONS, sql_words, state_expression


@dataclass(frozen=True, slots=True)
class DoneRows:
    """An earlier job and the server id of each row key that took effect in it."""

    job: JobInfo
    server_ids: Mapping[str, str]


def read_done_rows(
    path: str | os.PathLike[str], accept: Callable[[JobInfo], bool] = lambda job: True
) -> DoneRows | None:
    """The succeeded rows of the journal in ``path``; None if there is none to read or its
    job is not ``accept``-ed (checked before any row is read: a runs root may hold big
    journals of other files)."""
    try:
        db = resolve_db(path)
        conn = connect_readonly(db)
    except errors.FlexPayBatchError:
        return None
    try:
        conn.execute("BEGIN")
        job = read_job(conn, db, with_secret=True, versions=READABLE_VERSIONS)
        if not accept(job):
            conn.execute("COMMIT")
            return None
        state = state_expression(job.schema_version)
        rows = conn.execute(
            f"SELECT row_key, server_id FROM rows WHERE {state} IN {sql_words(SUCCEEDED)} "  # noqa: S608
            "AND server_id IS NOT NULL"
        ).fetchall()
        conn.execute("COMMIT")
    except errors.FlexPayBatchError:
        return None
    finally:
        conn.close()
    return DoneRows(job=job, server_ids={key: server_id for key, server_id in rows})


__all__ = ["DoneRows", "read_done_rows"]
