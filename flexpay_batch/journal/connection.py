"""Connections to a journal database: the writer's (WAL, synchronous=FULL) and readers'.

::

    conn = connect(db)                      # synchronous=FULL, busy timeout
    use_wal(conn, db)                       # once the job is committed (see Journal.create)
    with write_transaction(conn):
        conn.execute(...)                   # all of it committed and fsynced, or none of it
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from flexpay_batch.core.errors import UsageError

__all__ = ["connect", "connect_readonly", "use_wal", "write_transaction"]

_BUSY_TIMEOUT_MS: Final = 5000


def connect(db: Path) -> sqlite3.Connection:
    """Open ``db`` for writing: autocommit mode (we issue BEGIN), synchronous=FULL.

    The journal mode is left as the file has it: ``use_wal`` switches it.
    """
    # check_same_thread=False: AsyncJournalWriter commits from a worker thread; every use of
    # the connection is serialised by Journal's lock.
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # FULL: every commit is fsynced (the WAL, or the rollback journal and database), so it
        # survives power loss, not only a crash; NORMAL could lose the last commits, which for
        # a payroll run means a row re-sent after its key expired. Measured (20k transitions,
        # batches of 200): 1.8 ms per commit with FULL against 1.2 ms with NORMAL, ~12 us per
        # transition, hundreds of times what the API's rate limits let a run send.
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UsageError(f"{db} is not a flexpay-batch journal ({exc}).") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def use_wal(conn: sqlite3.Connection, db: Path) -> None:
    """Put ``db`` in WAL mode (persistent in the file), so readers never wait for the writer."""
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db} is not a flexpay-batch journal ({exc}).") from exc
    if str(mode).lower() != "wal":
        raise UsageError(f"The journal {db} cannot use WAL mode (got {mode!r}).")


def connect_readonly(db: Path) -> sqlite3.Connection:
    """Open ``db`` read-only through a ``mode=ro`` URI; WAL lets it read beside a writer."""
    if not db.is_file():
        raise UsageError(f"No flexpay-batch journal at {db}.")
    uri = f"file:{urllib.parse.quote(str(db.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError:
        return _copy_into_memory(db)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # A WAL reader must create ``-shm`` beside the database: on a read-only file system
        # (or a directory we may not write) that fails, though nothing can be writing there.
        conn.close()
        return _copy_into_memory(db)
    return conn


def _copy_into_memory(db: Path) -> sqlite3.Connection:
    """An in-memory copy of ``db`` and its ``-wal`` (committed rows included), for reading a
    journal where SQLite cannot create its shared-memory file. The copy lives in a private
    temporary directory only for the moment of the backup."""
    memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    with tempfile.TemporaryDirectory(prefix="flexpay-status-") as tmp:
        for suffix in ("", "-wal"):
            source = Path(f"{db}{suffix}")
            if source.exists():
                shutil.copyfile(source, Path(tmp) / f"{db.name}{suffix}")
        disk = sqlite3.connect(Path(tmp) / db.name)
        try:
            disk.backup(memory)
        finally:
            disk.close()
    return memory


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the body in one IMMEDIATE transaction: all of it is committed, or none of it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # A failing ROLLBACK (disk gone) must not hide the error that caused it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
