"""The writer's handle on a run's journal: create or open it, commit batches, read it back.

::

    with Journal.create(run_dir, JobInfo.new(...)) as journal:
        journal.commit_batch([Register(row=2, ...), Done(row=2, server_id="emp_1",
                                                          status=RowStatus.CREATED)])
        journal.counts()            # {RowStatus.CREATED: 1, RowStatus.PENDING: 0, ...}

A run buffers through ``writer.AsyncJournalWriter``, which calls ``commit_batch`` off the
event loop; ``run_journal.open_run_journal`` decides between create, resume and restart.

Durability: every ``commit_batch`` is one transaction, fsynced before it returns (WAL,
synchronous=FULL), so a commit survives a crash and a power loss. Because the idempotency key
is a pure function of the row (see ``core.keys``), nothing needs to be committed before a
request is sent: a row whose transitions were lost with the writer's buffer is re-sent under
the same key.

Resume after a long pause: the server remembers keys for 24 hours. A row still ``pending``
may have been sent just before a crash, at any moment since the job began, so a resume treats
keys as possibly expired once ``now - job.created_at`` nears the TTL and looks rows up first.

Privacy: the journal holds keyed hashes, body hashes, server ids, request ids and reasons,
never a personal value, provided callers pass reasons free of them (they must;
``files.find_values_in_files`` lets tests prove it byte by byte). Its files are 0600.

Concurrency: one writer per journal (``files.WriterLock``); other processes read through
``status.status_snapshot``, which WAL lets run beside the writer. Within this process the
connection is guarded by a lock, so commits may come from a worker thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Final, NamedTuple, Self, TypeVar, cast

from flexpay_batch.core.errors import UsageError
from flexpay_batch.core.states import SETTLED, SUCCEEDED, UNVERIFIED, RowStatus
from flexpay_batch.journal.connection import connect, use_wal, write_transaction
from flexpay_batch.journal.files import (
    WriterLock,
    create_private_file,
    remove_journal_files,
    resolve_db,
)
from flexpay_batch.journal.jobinfo import JobInfo, read_job, write_job
from flexpay_batch.journal.schema import (
    ROW_COLUMNS,
    SCHEMA_VERSION,
    create_tables,
    sql_words,
    upgrade,
)
from flexpay_batch.journal.statements import apply_grouped, apply_in_order
from flexpay_batch.journal.transitions import Transition

__all__ = ["Journal", "JournalStatistics", "RowOutcomeRecord", "RowRecord"]

_R = TypeVar("_R")

_PAGE_ROWS: Final = 1000
_SETTLED_SQL: Final = sql_words(SETTLED)
_SUCCEEDED_SQL: Final = sql_words(SUCCEEDED)
_PROBLEM_SQL: Final = sql_words((RowStatus.REJECTED, RowStatus.FAILED))

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One row of the journal as stored. Times are epoch seconds.

    ``request_id`` is the API's X-Request-Id of the row's last response (the one that
    settled, refused or last failed it), for support; None when no response had one.
    """

    row: int
    row_key: str
    body_hash: str | None
    status: RowStatus
    attempts: int
    idempotency_key: str | None
    first_sent_at: float | None
    server_id: str | None
    request_id: str | None
    field: str | None
    code: str | None
    reason: str | None
    updated_at: float


class RowOutcomeRecord(NamedTuple):
    """What the outputs read of one journal row (``Journal.iter_outcomes``): its outcome.

    A named tuple, not a ``RowRecord``: results.csv reads one per input row, and a tuple
    straight from SQLite costs a fraction of a 13-field frozen dataclass (~4 us a row).
    ``state`` is the stored status word (``RowStatus(state)``).
    """

    row: int
    state: str
    server_id: str | None
    field: str | None
    code: str | None
    reason: str | None
    request_id: str | None

    @property
    def status(self) -> RowStatus:
        """The row's status (an unknown word raises ``ValueError``, as ``RowStatus`` does)."""
        return _STATUS_OF.get(self.state) or RowStatus(self.state)


_OUTCOME_COLUMNS: Final = "row_no, state, server_id, field, code, reason, request_id"


@dataclass(frozen=True, slots=True)
class JournalStatistics:
    """Counters of this journal object since it was opened (not persisted); seconds."""

    commits: int
    transitions: int
    ignored: int
    commit_seconds: float


class Journal:
    """One process's write access to one journal; see the module docstring for the contract.

    Build it with ``create`` or ``open`` (or ``run_journal.open_run_journal``); close it, or
    use ``with``. ``wall_clock`` (epoch seconds) stamps ``updated_at`` and is injectable.
    """

    __slots__ = (
        "_commit_seconds",
        "_commits",
        "_conn",
        "_ignored",
        "_job",
        "_lock",
        "_transitions",
        "_wall_clock",
        "_writer_lock",
        "path",
    )

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        writer_lock: WriterLock,
        job: JobInfo,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Wrap an open connection and its writer lock; use ``create`` / ``open`` instead."""
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._writer_lock = writer_lock
        self._job = job
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._commits = 0
        self._transitions = 0
        self._ignored = 0
        self._commit_seconds = 0.0

    # construction

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        job: JobInfo,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Create a new journal for ``job`` at ``path`` (a database file or a run directory).

        Raises ``FileExistsError`` if a journal is already there (a job is never
        overwritten), ``ResumeRefused`` if another process holds its writer lock.
        """
        db = resolve_db(path)
        if db.exists():  # before the lock: a journal in use is still "already there"
            raise FileExistsError(f"A journal already exists at {db}.")
        lock = WriterLock.take(db)
        try:
            return cls.create_locked(db, job, lock, wall_clock=wall_clock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def create_locked(
        cls,
        db: Path,
        job: JobInfo,
        lock: WriterLock,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """``create`` under a writer lock the caller took; the journal owns it on success.

        The schema and the job are committed with a rollback journal, straight into the
        database file, and only then does the file switch to WAL. So a database without
        tables that is not in WAL mode never held a job (a crash in here), while every
        journal that did hold one keeps it in the database file, whatever happens to its
        ``-wal`` file later (see ``run_journal``).
        """
        create_private_file(db)
        try:
            conn = connect(db)
        except BaseException:
            remove_journal_files(db)
            raise
        try:
            with write_transaction(conn):
                create_tables(conn)
                write_job(conn, job, wall_clock())
            use_wal(conn, db)
        except BaseException:
            conn.close()
            remove_journal_files(db)  # half a journal would later be refused
            raise
        return cls(db, conn, lock, job, wall_clock=wall_clock)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Open an existing journal for writing (a database file or a run directory).

        A version 1 journal is upgraded in place first (one transaction). Raises
        ``UsageError`` if there is none or it is not a journal; ``ResumeRefused`` if another
        process holds it, its schema version is unknown, or its job cannot be read.
        """
        db = resolve_db(path)
        if not db.is_file():
            raise UsageError(f"No flexpay-batch journal at {db}.")
        lock = WriterLock.take(db)
        try:
            return cls.open_locked(db, lock, wall_clock=wall_clock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_locked(
        cls,
        db: Path,
        lock: WriterLock,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """``open`` under a writer lock the caller took; the journal owns it on success."""
        conn = connect(db)
        try:
            # Checked before use_wal: switching a foreign rollback-mode file to WAL would
            # change it, and a journal's file is in WAL mode already.
            previous = upgrade(conn, db)
            use_wal(conn, db)
            job = read_job(conn, db, with_secret=True, versions=frozenset({SCHEMA_VERSION}))
        except BaseException:
            conn.close()
            raise
        if previous != SCHEMA_VERSION:
            _log.info("journal %s upgraded from schema version %d", db, previous)
        return cls(db, conn, lock, job, wall_clock=wall_clock)

    # lifecycle

    @property
    def job(self) -> JobInfo:
        """The job this journal belongs to, as stored when it was created."""
        return self._job

    def close(self) -> None:
        """Close the database and release the writer lock. Idempotent."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._writer_lock.release()

    def close_keeping_lock(self) -> None:
        """Close the database but leave the writer lock held (the caller took it and now
        owns it again): for setting this journal aside without letting another process in."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the journal is closed")
        return self._conn

    # writing

    def commit_batch(self, transitions: Sequence[Transition]) -> int:
        """Apply ``transitions`` in order in one transaction and commit it (fsynced).

        Returns how many were ignored (backwards moves, unknown rows): they are counted in
        ``statistics().ignored`` and logged by row number, because the journal is the audit
        record (a stale caller must not rewrite history) and raising would throw away the
        valid transitions of the batch. On an error nothing of the batch is applied and the
        error propagates: the run must stop, not go on unjournaled.

        The statements are grouped (``statements.apply_grouped``: the same final rows as one
        by one). If any transition turns out ignored, the grouped attempt is rolled back to a
        savepoint and the batch re-applied one statement at a time, to name the ignored rows.
        """
        with self._lock:
            conn = self._db()
            started = time.perf_counter()
            now = self._wall_clock()
            ignored: list[int] = []
            with write_transaction(conn):
                conn.execute("SAVEPOINT grouped")
                if not apply_grouped(conn, transitions, now):
                    conn.execute("ROLLBACK TO grouped")
                    ignored = apply_in_order(conn, transitions, now)
                conn.execute("RELEASE grouped")
                conn.execute("UPDATE job SET updated_at = ? WHERE id = 1", (now,))
            self._note_commit(len(transitions), ignored, time.perf_counter() - started)
            return len(ignored)

    def _note_commit(self, applied: int, ignored: list[int], seconds: float) -> None:
        self._commits += 1
        self._transitions += applied
        self._ignored += len(ignored)
        self._commit_seconds += seconds
        if ignored:
            _log.warning(
                "journal ignored %d transition(s) that would move a row backwards or name an "
                "unregistered row (rows %s)",
                len(ignored),
                ", ".join(map(str, ignored[:20])),
            )

    def set_meta(self, key: str, value: str) -> None:
        """Store a run-level fact (e.g. the payroll run id) and commit it at once."""
        with self._lock:
            conn = self._db()
            with write_transaction(conn):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def reset_rejected(self) -> int:
        """Move every rejected row back to pending (``--retry-rejected``); return how many.

        Attempts, key, ``first_sent_at`` and ``request_id`` are kept: the row is the same row.
        """
        with self._lock:
            conn = self._db()
            with write_transaction(conn):
                cursor = conn.execute(
                    "UPDATE rows SET state = 'pending', field = NULL, code = NULL, "
                    "reason = NULL, updated_at = ? WHERE state = 'rejected'",
                    (self._wall_clock(),),
                )
            return cursor.rowcount

    # reading (committed data)

    def get_meta(self, key: str) -> str | None:
        """Return the committed value of ``key``, or None."""
        with self._lock:
            found = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if found is None else cast(str, found[0])

    def meta(self) -> dict[str, str]:
        """Return every committed run-level fact."""
        with self._lock:
            return dict(self._db().execute("SELECT key, value FROM meta ORDER BY key"))

    def row(self, row_no: int) -> RowRecord | None:
        """Return the committed record of row ``row_no``, or None if it was never registered."""
        with self._lock:
            found = (
                self._db()
                .execute(f"SELECT {ROW_COLUMNS} FROM rows WHERE row_no = ?", (row_no,))  # noqa: S608
                .fetchone()
            )
            return None if found is None else _row_record(found)

    def iter_rows(self) -> Iterator[RowRecord]:
        """Yield every committed row in row order, a page at a time (no lock held between)."""
        return self._paged(ROW_COLUMNS, _row_record)

    def iter_outcomes(self) -> Iterator[RowOutcomeRecord]:
        """Yield every committed row's outcome in row order, a page at a time (as
        ``iter_rows``, with only the columns results.csv and rejects.csv need)."""
        return self._paged(_OUTCOME_COLUMNS, RowOutcomeRecord._make)

    def iter_outcome_values(self) -> Iterator[tuple[Any, ...]]:
        """``iter_outcomes`` as the plain tuples SQLite gives (the same values, in the same
        order, without a ``RowOutcomeRecord`` made of each: for one pass over every row)."""
        return chain.from_iterable(self._pages(_OUTCOME_COLUMNS))

    def _paged(self, columns: str, make: Callable[[Sequence[Any]], _R]) -> Iterator[_R]:
        """``make`` of every committed row's ``columns`` (``row_no`` first) in row order."""
        for page in self._pages(columns):
            yield from map(make, page)

    def _pages(self, columns: str) -> Iterator[list[tuple[Any, ...]]]:
        """Every committed row's ``columns`` (``row_no`` first) in row order, a page at a
        time: no lock held between pages, so writers are not kept waiting."""
        last = -1
        while True:
            page = self._page(columns, last)
            if not page:
                return
            yield page
            last = page[-1][0]

    def _page(self, columns: str, last: int) -> list[tuple[Any, ...]]:
        """The next page of ``columns`` (``row_no`` first) after row ``last``, in row order."""
        with self._lock:
            return (
                self._db()
                .execute(
                    f"SELECT {columns} FROM rows WHERE row_no > ? "  # noqa: S608
                    "ORDER BY row_no LIMIT ?",
                    (last, _PAGE_ROWS),
                )
                .fetchall()
            )

    def outcome_of(self, row_no: int) -> RowOutcomeRecord | None:
        """Return the committed outcome of row ``row_no``, or None if it was never registered."""
        with self._lock:
            found = (
                self._db()
                .execute(
                    f"SELECT {_OUTCOME_COLUMNS} FROM rows WHERE row_no = ?",  # noqa: S608
                    (row_no,),
                )
                .fetchone()
            )
            return None if found is None else RowOutcomeRecord._make(found)

    def settled_times(self) -> list[float]:
        """Return when each row that took effect was settled (``updated_at``), in row order."""
        with self._lock:
            cursor = self._db().execute(
                f"SELECT updated_at FROM rows WHERE state IN {_SUCCEEDED_SQL} "  # noqa: S608
                "ORDER BY row_no"
            )
            return [at for (at,) in cursor]

    def problem_rows(self, limit: int) -> tuple[list[RowRecord], int]:
        """Return the first ``limit`` rejected or failed rows (row order) and how many there are."""
        with self._lock:
            db = self._db()
            (total,) = db.execute(
                f"SELECT count(*) FROM rows WHERE state IN {_PROBLEM_SQL}"  # noqa: S608
            ).fetchone()
            page = db.execute(
                f"SELECT {ROW_COLUMNS} FROM rows WHERE state IN {_PROBLEM_SQL} "  # noqa: S608
                "ORDER BY row_no LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row_record(values) for values in page], int(total)

    def row_statuses(self) -> dict[int, RowStatus]:
        """Return row number → committed status for every registered row."""
        with self._lock:
            cursor = self._db().execute("SELECT row_no, state FROM rows")
            return {row_no: RowStatus(state) for row_no, state in cursor}

    def settled_rows(self) -> set[int]:
        """Return the rows a default resume skips: succeeded or rejected (failed are retried)."""
        with self._lock:
            cursor = self._db().execute(
                f"SELECT row_no FROM rows WHERE state IN {_SETTLED_SQL}"  # noqa: S608
            )
            return {row_no for (row_no,) in cursor}

    def server_ids(self) -> dict[str, int]:
        """Return server id → row for every row that recorded one (to catch a reused id)."""
        with self._lock:
            cursor = self._db().execute(
                "SELECT server_id, row_no FROM rows WHERE server_id IS NOT NULL"
            )
            return {server_id: row_no for server_id, row_no in cursor}

    def unverified_rows(self) -> set[int]:
        """Return the failed rows whose 2xx could not be trusted: resume looks them up first."""
        with self._lock:
            cursor = self._db().execute(
                "SELECT row_no FROM rows WHERE state = ? AND code = ?",
                (RowStatus.FAILED.value, UNVERIFIED),
            )
            return {row_no for (row_no,) in cursor}

    def counts(self) -> dict[RowStatus, int]:
        """Return committed rows per status; every status is present, zero included."""
        with self._lock:
            result = dict.fromkeys(RowStatus, 0)
            for state, n in self._db().execute("SELECT state, count(*) FROM rows GROUP BY 1"):
                result[RowStatus(state)] = n
            return result

    def statistics(self) -> JournalStatistics:
        """Return this object's commit counters (for progress and benchmarks)."""
        with self._lock:
            return JournalStatistics(
                commits=self._commits,
                transitions=self._transitions,
                ignored=self._ignored,
                commit_seconds=self._commit_seconds,
            )

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check``; ``["ok"]`` means the database is sound."""
        with self._lock:
            return [line for (line,) in self._db().execute("PRAGMA integrity_check")]


def _row_record(values: Sequence[object]) -> RowRecord:
    # Positional, in ``ROW_COLUMNS`` order: one record per journal row when the outputs are
    # written, so no per-field cast() calls and the status word looked up, not parsed.
    row, row_key, body_hash, state, *rest = values
    status = _STATUS_OF.get(state) or RowStatus(str(state))  # an unknown word: ValueError
    return RowRecord(row, row_key, body_hash, status, *rest)  # type: ignore[arg-type]


#: ``RowStatus`` by its word (``RowStatus(word)`` goes through the enum machinery each time).
_STATUS_OF: Final[dict[object, RowStatus]] = {status.value: status for status in RowStatus}
