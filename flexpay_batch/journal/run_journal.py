"""Open a run's journal: begin a job, continue it, or (``--restart``) set it aside for a new one.

::

    with open_run_journal(run_dir, wanted_job, restart=False) as journal:
        if journal.job.job_id != wanted_job.job_id:
            ...                                   # resuming the stored job

Safety rules, in this order, all under the journal's writer lock taken first:

1. Another process writing the journal: refused (``ResumeRefused``), nothing touched, even
   with ``restart``.
2. ``restart``: every file of the run directory (journal, side files, outputs) moves to
   ``previous-<time>/``; nothing is deleted. The lock file stays, held, so no other process
   can slip in between the move and the new journal.
3. A database without tables that is not in WAL mode is the leftover of a crash inside
   ``Journal.create`` (which commits the job before switching to WAL): no request was ever
   sent under it, so it is deleted and the job begun afresh.
4. Anything else is opened and must belong to this job (``jobinfo.check_resumable`` plus the
   caller's ``same_parameters_check``). A journal whose job cannot be read (a lost ``-wal``
   file) is refused with a sentence saying what to do, never replaced: a new job would get a
   new secret, hence new idempotency keys, and rows already applied would apply again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from flexpay_batch.core.files import ensure_private_dir
from flexpay_batch.journal.files import WriterLock, in_wal_mode, remove_journal_files, resolve_db
from flexpay_batch.journal.jobinfo import JobInfo, check_resumable
from flexpay_batch.journal.store import Journal

__all__ = ["open_run_journal"]


def open_run_journal(
    path: str | os.PathLike[str],
    wanted: JobInfo,
    *,
    restart: bool = False,
    allow_token_change: bool = False,
    same_parameters_check: Callable[[JobInfo, JobInfo], None] | None = None,
    supersede: Callable[[JobInfo, JobInfo], bool] | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> Journal:
    """Return the journal of the run at ``path`` (a run directory or a database file).

    Creates it for ``wanted`` if there is none (or ``restart``), else resumes the stored
    job, whose id and secret win over ``wanted``'s. ``same_parameters_check(stored,
    wanted)`` may raise ``ResumeRefused`` too. Raises ``ResumeRefused`` as the module
    docstring says; the run directory is made private (0700) first.
    """
    db = resolve_db(path)
    ensure_private_dir(db.parent)
    lock = WriterLock.take(db)
    try:
        journal, created = _create_or_open(
            db, wanted, lock, restart=restart, supersede=supersede, wall_clock=wall_clock
        )
    except BaseException:
        lock.release()
        raise
    if created:
        return journal
    try:
        check_resumable(journal.job, wanted, allow_token_change=allow_token_change)
        if same_parameters_check is not None:
            same_parameters_check(journal.job, wanted)
    except BaseException:
        journal.close()
        raise
    return journal


def _create_or_open(
    db: Path,
    wanted: JobInfo,
    lock: WriterLock,
    *,
    restart: bool,
    supersede: Callable[[JobInfo, JobInfo], bool] | None,
    wall_clock: Callable[[], float],
) -> tuple[Journal, bool]:
    """The journal, under ``lock``, and whether it was created just now."""
    if restart and db.exists():
        _archive_run_files(db.parent, keep=lock.path)
    if db.exists() and _never_held_a_job(db):
        remove_journal_files(db)
    if db.exists():
        journal = Journal.open_locked(db, lock, wall_clock=wall_clock)
        try:
            superseded = supersede is not None and supersede(journal.job, wanted)
        except BaseException:
            journal.close_keeping_lock()
            raise
        if not superseded:
            return journal, False
        journal.close_keeping_lock()
        _archive_run_files(db.parent, keep=lock.path)
    return Journal.create_locked(db, wanted, lock, wall_clock=wall_clock), True


def _never_held_a_job(db: Path) -> bool:
    """True for the leftover of a crash inside ``Journal.create``: no tables, not in WAL mode.

    Without this, a SIGKILL in that window would leave a run directory that nothing but
    ``--restart`` could use. Anything SQLite cannot read is left for ``Journal.open`` to
    name.
    """
    try:
        if in_wal_mode(db):
            return False
        # A rollback-mode database: reading it rolls back a hot -journal of the crashed create.
        with closing(sqlite3.connect(db)) as conn:
            (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except (OSError, sqlite3.Error):
        return False
    return int(tables) == 0


def _archive_run_files(run_dir: Path, *, keep: Path) -> None:
    """Move the old job's files (an audit trail) under ``previous-<time>/``; never delete.

    ``keep`` (the writer lock file, held by the caller) stays: moving it would let another
    process take a fresh lock file while this one still works on the run.
    """
    archive = run_dir / time.strftime("previous-%Y%m%dT%H%M%S")
    suffix = 1
    while archive.exists():  # two restarts within one second must not overwrite each other
        suffix += 1
        archive = run_dir / time.strftime(f"previous-%Y%m%dT%H%M%S-{suffix}")
    ensure_private_dir(archive)
    for child in run_dir.iterdir():
        if child.is_file() and child != keep:
            child.rename(archive / child.name)
