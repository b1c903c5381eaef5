"""The journal's files on disk: where the database is, its side files, its mode, its lock.

::

    db = resolve_db(run_dir)              # run_dir / "journal.sqlite"
    with WriterLock.take(db):             # ResumeRefused while another process writes it
        ...

The database, its ``-wal``, ``-shm`` and ``-journal`` side files and the ``.lock`` file are
0600 (SQLite gives its side files the database's mode); a directory the journal creates is 0700.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Self

from flexpay_batch.core.errors import ResumeRefused

__all__ = [
    "JOURNAL_NAME",
    "WriterLock",
    "create_private_file",
    "find_values_in_files",
    "in_wal_mode",
    "journal_files",
    "remove_journal_files",
    "resolve_db",
]

JOURNAL_NAME: Final = "journal.sqlite"
FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
_DB_SUFFIXES: Final = frozenset({".sqlite", ".sqlite3", ".db"})
# -journal: the rollback journal of the create transaction (see schema.write_schema).
_SIDE_SUFFIXES: Final = ("-wal", "-shm", "-journal")
# SQLite's file header: bytes 18 and 19 are the write and read format versions, 2 for WAL.
_HEADER_BYTES: Final = 100
_WAL_FORMAT: Final = 2


def resolve_db(path: str | os.PathLike[str]) -> Path:
    """Return the database path: ``path`` itself if it names a database file (``.sqlite``,
    ``.sqlite3``, ``.db``), else ``path / JOURNAL_NAME`` (``path`` is a run directory)."""
    candidate = Path(path)
    return candidate if candidate.suffix in _DB_SUFFIXES else candidate / JOURNAL_NAME


def journal_files(db_path: str | os.PathLike[str]) -> list[Path]:
    """Return the database and its ``-wal`` / ``-shm`` / ``-journal`` files that exist now."""
    base = Path(db_path)
    candidates = (base, *(Path(f"{base}{suffix}") for suffix in _SIDE_SUFFIXES))
    return [p for p in candidates if p.exists()]


def remove_journal_files(db: Path) -> None:
    """Delete ``db`` and its side files. Only for a journal that never held a job."""
    for path in journal_files(db):
        path.unlink(missing_ok=True)


def in_wal_mode(db: Path) -> bool:
    """True if the database file's header says WAL mode, which only a born journal has.

    ``Journal.create`` commits the schema and the job with a rollback journal and switches
    to WAL afterwards, so a WAL-mode file once held a job even if its tables are gone
    from view (a deleted ``-wal`` file takes every commit not yet checkpointed with it).
    """
    with db.open("rb") as file:
        header = file.read(_HEADER_BYTES)
    return len(header) == _HEADER_BYTES and header[18] == header[19] == _WAL_FORMAT


def find_values_in_files(
    db_path: str | os.PathLike[str], values: Iterable[str | bytes]
) -> list[tuple[str, str | bytes]]:
    """Return (file name, value) for every value whose bytes occur in a journal file.

    A test helper: SQLite stores text as UTF-8, so a personal value that reached the journal
    in any column, or in a freed page, shows up here. Empty values are skipped.
    """
    needles = [(v, v.encode("utf-8") if isinstance(v, str) else v) for v in values]
    found: list[tuple[str, str | bytes]] = []
    for path in journal_files(db_path):
        data = path.read_bytes()
        found.extend((path.name, v) for v, raw in needles if raw and raw in data)
    return found


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 (``FileExistsError`` if it exists), its directory 0700.

    SQLite accepts an empty file as an empty database and gives its side files the database
    file's mode, so all of them are owner-only from their first byte.
    """
    _make_parent(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(path, flags, FILE_MODE))


def _make_parent(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=_DIR_MODE, parents=True)


#: How often, and how far apart, taking the writer lock is retried: ``status`` probes it
#: with a shared lock held for microseconds, which must not refuse a run starting then.
_PROBE_RETRIES = 5
_PROBE_PAUSE = 0.01


def _flock_allowing_probes(fd: int) -> None:
    for _ in range(_PROBE_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(_PROBE_PAUSE)
        else:
            return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class WriterLock:
    """The exclusive right to write one journal: an ``flock`` on ``<db>.lock``.

    A separate lock file, because opening and closing another descriptor on the database
    itself would drop SQLite's own POSIX locks on it. The kernel drops the lock when the
    process dies, even on SIGKILL, so a crashed run never blocks its resume.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        """Wrap a locked descriptor; use ``take`` instead."""
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, db: Path) -> WriterLock:
        """Lock ``db`` for this process, or raise ``ResumeRefused`` if another holds it.

        Creates the lock file (0600) and a missing directory (0700). Never waits.
        """
        _make_parent(db)
        path = Path(f"{db}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        try:
            _flock_allowing_probes(fd)
        except BlockingIOError:
            os.close(fd)
            raise ResumeRefused(
                f"Another flexpay-batch process is using the journal {db}.",
                hint="Wait for it to finish (see `flexpay-batch status RUN_DIR`), or stop it.",
            ) from None
        return cls(path, fd)

    @staticmethod
    def is_held(db: Path) -> bool:
        """Whether a writer holds ``db``'s lock now; never blocks and never creates a file.

        Takes a shared lock for an instant: a live writer (exclusive) is not disturbed, and
        a writer starting in that instant retries briefly (``_flock_allowing_probes``).
        """
        path = Path(f"{db}.lock")
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the shared lock, if taken
        return False

    def release(self) -> None:
        """Give the lock up. Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
