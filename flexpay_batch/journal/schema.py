"""The journal's tables, their version, and the upgrade of older journals in place.

::

    with write_transaction(conn):
        create_tables(conn)                 # a new journal (Journal.create)
    upgrade(conn, db)                       # an existing one (Journal.open), v1 → v2

Version 2 (this one): ``rows.state`` holds the words of ``core.states.RowStatus`` (created,
replayed, already_existed instead of v1's ``done`` plus the outcome in ``note``), and
``rows.request_id`` is the API's X-Request-Id of the row's last response (v1 kept it in
``note`` for rejected and failed rows only). Status readers read v1 as well, through
``state_expression``, because they must not write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from flexpay_batch.core.errors import ResumeRefused, UsageError
from flexpay_batch.core.states import SUCCEEDED, RowStatus
from flexpay_batch.journal.connection import write_transaction
from flexpay_batch.journal.files import in_wal_mode

__all__ = [
    "JOB_COLUMNS",
    "READABLE_VERSIONS",
    "ROW_COLUMNS",
    "SCHEMA_VERSION",
    "create_tables",
    "sql_words",
    "state_expression",
    "stored_version",
    "upgrade",
]

SCHEMA_VERSION: Final = 2
#: Versions a read-only status reader understands (it cannot upgrade them).
READABLE_VERSIONS: Final = frozenset({1, SCHEMA_VERSION})


def sql_words(states: Iterable[RowStatus]) -> str:
    """``states`` as an SQL list of string literals, e.g. ``('failed', 'pending')``.

    Only for ``RowStatus`` members: their values are fixed identifiers, never input.
    """
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"


_JOB_TABLE: Final = """CREATE TABLE job (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    input_path TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    base_url TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    config_json TEXT NOT NULL,
    secret BLOB NOT NULL,  -- per-job random HMAC key (keys.new_job_secret), not the token
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    schema_version INTEGER NOT NULL
)"""
_META_TABLE: Final = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
_ROWS_TABLE: Final = f"""CREATE TABLE {{table}} (
    row_no INTEGER PRIMARY KEY,
    row_key TEXT NOT NULL,
    body_hash TEXT,
    state TEXT NOT NULL CHECK (state IN {sql_words(RowStatus)}),
    attempts INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    first_sent_at REAL,
    server_id TEXT,
    request_id TEXT,
    field TEXT,
    code TEXT,
    reason TEXT,
    updated_at REAL NOT NULL
)"""
# counts() and the status rate ("succeeded in the last minute") are index-only scans.
_ROWS_INDEX: Final = "CREATE INDEX rows_state_updated ON rows (state, updated_at)"

JOB_COLUMNS: Final = (
    "job_id, kind, input_path, input_sha256, base_url, token_fingerprint, config_json, "
    "created_at, schema_version"
)
ROW_COLUMNS: Final = (
    "row_no, row_key, body_hash, state, attempts, idempotency_key, first_sent_at, "
    "server_id, request_id, field, code, reason, updated_at"
)

# v1 said "done" and kept the outcome in ``note``; an outcome it did not know reads as created
# (the row did take effect, which is what matters for a resume).
_V1_STATE: Final = (
    "CASE WHEN state = 'done' THEN "
    f"CASE WHEN note IN {sql_words(SUCCEEDED)} THEN note ELSE 'created' END "
    "ELSE state END"
)


def create_tables(conn: sqlite3.Connection) -> None:
    """Create the tables of a new journal (inside the caller's transaction)."""
    for statement in (_JOB_TABLE, _META_TABLE, _ROWS_TABLE.format(table="rows"), _ROWS_INDEX):
        conn.execute(statement)


def state_expression(version: int) -> str:
    """SQL giving a row's ``RowStatus`` word from ``rows`` of a journal of ``version``."""
    return _V1_STATE if version == 1 else "state"


def stored_version(conn: sqlite3.Connection, db: Path, versions: frozenset[int]) -> int:
    """Return the journal's schema version if it is one of ``versions``; else refuse.

    Raises ``UsageError`` for a database that is not a journal; ``ResumeRefused`` for a
    journal of another version, or one whose job cannot be seen (a lost ``-wal`` file).
    """
    try:
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db} is not a flexpay-batch journal ({exc}).") from exc
    if not tables and in_wal_mode(db):
        raise _lost_job(db)
    if "job" not in tables:
        raise UsageError(f"{db} is not a flexpay-batch journal (it has no job table).")
    found = conn.execute("SELECT schema_version FROM job WHERE id = 1").fetchone()
    if found is None:
        raise _lost_job(db)
    if found[0] not in versions:
        raise ResumeRefused(
            f"The journal {db} has schema version {found[0]}; this flexpay-batch reads "
            f"version{'s' if len(versions) > 1 else ''} "
            f"{', '.join(map(str, sorted(versions)))}.",
            hint="Resume it with the flexpay-batch version that began it.",
        )
    return int(found[0])


def _lost_job(db: Path) -> ResumeRefused:
    return ResumeRefused(
        f"The journal {db} was begun but its job record cannot be read; its {db.name}-wal "
        "file, which holds the commits not yet copied into the database, may have been "
        "deleted. Nothing was deleted or replaced.",
        hint=(
            f"Put {db.name}-wal back beside it if you have a copy; otherwise pass --restart "
            "to move it under previous-*/ and begin a new job (check the FlexPay account "
            "first: rows it sent would be sent again under new idempotency keys)."
        ),
    )


def upgrade(conn: sqlite3.Connection, db: Path) -> int:
    """Bring the journal to ``SCHEMA_VERSION`` in place; return the version it had.

    The caller holds the writer lock. The upgrade is one transaction: a crash or an error
    leaves the journal exactly as it was. Raises what ``stored_version`` raises.
    """
    found = stored_version(conn, db, READABLE_VERSIONS)
    if found == 1:
        with write_transaction(conn):
            _upgrade_from_v1(conn)
    return found


def _upgrade_from_v1(conn: sqlite3.Connection) -> None:
    # SQLite cannot change a CHECK constraint or drop a column in place: copy into a new
    # table and swap it in (the index goes with the old table and is made again).
    conn.execute(_ROWS_TABLE.format(table="rows_v2"))
    conn.execute(
        f"INSERT INTO rows_v2 ({ROW_COLUMNS}) "  # noqa: S608
        f"SELECT row_no, row_key, body_hash, {_V1_STATE}, attempts, idempotency_key, "
        "first_sent_at, server_id, CASE WHEN state = 'done' THEN NULL ELSE note END, "
        "field, code, reason, updated_at FROM rows"
    )
    conn.execute("DROP TABLE rows")
    conn.execute("ALTER TABLE rows_v2 RENAME TO rows")
    conn.execute(_ROWS_INDEX)
    conn.execute("UPDATE job SET schema_version = ?", (SCHEMA_VERSION,))
