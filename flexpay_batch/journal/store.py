"""The checkpoint journal: one SQLite database (WAL mode) per run that makes a run resumable.

::

    with Journal.open_or_create(run_dir / JOURNAL_NAME, JobInfo.new(...)) as journal:
        journal.record(Register(row=2, row_key=..., body_hash=..., idempotency_key=...))
        journal.record(InFlight(row=2, idempotency_key=..., attempt=1, at=time.time()))
        journal.record(Done(row=2, server_id="emp_123", note="created"))
    # closing flushes; an AsyncJournalWriter does the same from asyncio without blocking

What it holds: the job (kind, input file and its SHA-256, base URL, token *fingerprint*, the
effective configuration, the per-job secret), run-level facts (``meta``) and one line per input
row with its state::

    pending ──▶ in_flight(attempts) ──▶ done(server_id, note)
       │            ▲    │        ╲──▶ rejected(field, code, reason)
       │            │    ▼
       │            └── failed(code, reason)     failed rows are retried on resume
       └──────────────────▶ done | rejected | failed   (look-ups, local validation)

Transitions are monotone. ``done`` is final; ``rejected`` is final except through
``reset_rejected()`` (``--retry-rejected``). A transition that would move a row backwards
(``in_flight`` after ``done``), or that names a row never registered, is **ignored**, counted
in ``statistics().ignored`` and logged by row number: the journal is the audit record, so a
stale or buggy caller must not be able to rewrite history, and raising inside a group commit
would throw away the other, valid transitions of the batch.

Durability. Transitions are buffered and written in group commits (every ``max_batch``
transitions or ``max_delay`` seconds, whichever comes first). A commit runs with
``synchronous=FULL``: it returns only after the WAL is fsynced, so a commit survives a process
crash *and* a power loss; ``NORMAL`` would survive the crash but could lose the last commits on
power loss, which for a payroll run means a row re-sent after its key expired. Because the
idempotency key is a pure function of the row (see ``keys``), nothing needs to be committed
before a request is sent: a row lost from the buffer by a crash is simply re-sent under the
same key.

Resume after a long pause. The server remembers keys for 24 hours. ``first_sent_at`` is the
earliest send the journal saw; a row still ``pending`` in the journal may nevertheless have been
sent just before a crash (its ``in_flight`` was in the lost buffer), at any moment since the job
began. So a resume must treat a key as possibly expired once ``now - first_sent_at`` (or, when
that is unknown, ``now - job.created_at``) nears the TTL, and look the row up before re-sending.

Privacy. The journal holds keyed hashes, body hashes, server ids (``emp_123``) and reasons.
It never sees a personal value, provided callers pass reasons free of them (they must;
``find_values_in_files`` lets tests prove it byte by byte). The database, ``-wal`` and ``-shm``
files are created 0600 (SQLite gives its side files the database's mode), in a 0700 directory
when the journal creates the directory.

Concurrency. One writer per run directory, enforced with an ``flock`` on ``<db>.lock`` (the
kernel drops it when the process dies, even on SIGKILL). Readers in other processes use
``status_snapshot``, which opens the database read-only and, thanks to WAL, never waits for the
writer. Within the writing process the connection is guarded by a lock, so the
``AsyncJournalWriter`` can commit from a worker thread while the event loop keeps running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, assert_never, cast, get_args

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from flexpay_batch.core.errors import ResumeRefused, UsageError
from flexpay_batch.core.keys import new_job_secret

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DELAY",
    "JOURNAL_NAME",
    "SCHEMA_VERSION",
    "AsyncJournalWriter",
    "Done",
    "Failed",
    "InFlight",
    "JobInfo",
    "JobKind",
    "JobSummary",
    "Journal",
    "JournalStatistics",
    "Register",
    "Rejected",
    "RowRecord",
    "RowState",
    "StatusSnapshot",
    "Transition",
    "check_resumable",
    "find_values_in_files",
    "journal_files",
    "new_job_id",
    "status_snapshot",
]

JOURNAL_NAME: Final = "journal.sqlite"
SCHEMA_VERSION: Final = 1
DEFAULT_MAX_BATCH: Final = 200
DEFAULT_MAX_DELAY: Final = 0.05
RATE_WINDOW_SECONDS: Final = 60.0
_BUSY_TIMEOUT_MS: Final = 5000
_PAGE_ROWS: Final = 1000
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
_DB_SUFFIXES: Final = frozenset({".sqlite", ".sqlite3", ".db"})

JobKind = Literal["onboarding", "payroll"]
_JOB_KINDS: Final = frozenset(get_args(JobKind))

_log = logging.getLogger(__name__)


class RowState(StrEnum):
    """Where one input row stands; stored as this text in the ``rows.state`` column."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"


# States a transition may leave (the SQL guards below spell the same set). done never
# moves; rejected moves only through reset_rejected().
_OPEN_STATES: Final = (RowState.PENDING, RowState.IN_FLIGHT, RowState.FAILED)
# What a default resume skips: failed rows are retried (their outcome may even be unknown).
_SETTLED_STATES: Final = (RowState.DONE, RowState.REJECTED)


# ── job ──────────────────────────────────────────────────────────────────────────────────


def new_job_id(now: float | None = None) -> str:
    """Return a sortable, unique job id such as ``20260509T073525Z-3f9a1c`` (UTC)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What may be shown about a job: everything but the secret (the token is never stored)."""

    job_id: str
    kind: JobKind
    input_path: str
    input_sha256: str
    base_url: str
    token_fingerprint: str
    config: Mapping[str, object]
    created_at: float
    schema_version: int


@dataclass(frozen=True, slots=True)
class JobInfo:
    """The identity of one job, written once when the journal is created.

    ``config_json`` is the effective configuration as canonical JSON and must hold no secret.
    ``secret`` is the per-job random value (``keys.new_job_secret``) from which row keys and
    idempotency keys are derived; it is *not* the API token and is useless against the API.
    Times are epoch seconds.
    """

    job_id: str
    kind: JobKind
    input_path: str
    input_sha256: str
    base_url: str
    token_fingerprint: str
    config_json: str
    secret: bytes = dataclasses.field(repr=False)
    created_at: float
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in _JOB_KINDS:
            raise ValueError(f"unknown job kind {self.kind!r}")

    @classmethod
    def new(
        cls,
        *,
        kind: JobKind,
        input_path: str | os.PathLike[str],
        input_sha256: str,
        base_url: str,
        token_fingerprint: str,
        config: Mapping[str, object],
        now: float | None = None,
    ) -> JobInfo:
        """Return a fresh job: a new id, a new secret, ``created_at`` = ``now`` or the clock."""
        created = time.time() if now is None else now
        return cls(
            job_id=new_job_id(created),
            kind=kind,
            input_path=str(input_path),
            input_sha256=input_sha256,
            base_url=base_url,
            token_fingerprint=token_fingerprint,
            config_json=json.dumps(
                dict(config), sort_keys=True, separators=(",", ":"), default=str
            ),
            secret=new_job_secret(),
            created_at=created,
        )

    @property
    def config(self) -> dict[str, object]:
        """The effective configuration, decoded from ``config_json``."""
        return cast(dict[str, object], json.loads(self.config_json))

    def summary(self) -> JobSummary:
        """Return the displayable part of the job (no secret)."""
        return JobSummary(
            job_id=self.job_id,
            kind=self.kind,
            input_path=self.input_path,
            input_sha256=self.input_sha256,
            base_url=self.base_url,
            token_fingerprint=self.token_fingerprint,
            config=self.config,
            created_at=self.created_at,
            schema_version=self.schema_version,
        )


def check_resumable(
    stored: JobInfo, requested: JobInfo, *, allow_token_change: bool = False
) -> None:
    """Raise ``ResumeRefused`` unless ``requested`` may continue the ``stored`` job.

    Compared: kind, input SHA-256, base URL and (unless ``allow_token_change``) the token
    fingerprint. The input *path* may differ (a moved file with the same bytes is the same
    input). ``job_id``, secret and times of ``requested`` are ignored: the stored ones win.
    """
    if stored.kind != requested.kind:
        raise ResumeRefused(
            f"The run directory holds a {stored.kind} job ({stored.job_id}); "
            f"this command starts a {requested.kind} job."
        )
    if stored.input_sha256 != requested.input_sha256:
        raise ResumeRefused(
            f"The input file changed since the run began (sha256 {stored.input_sha256} "
            f"then, {requested.input_sha256} now): {requested.input_path}. "
            "Resuming would send rows that differ from the ones already sent."
        )
    if stored.base_url != requested.base_url:
        raise ResumeRefused(
            f"The run began against {stored.base_url}; this invocation targets "
            f"{requested.base_url}."
        )
    if not allow_token_change and stored.token_fingerprint != requested.token_fingerprint:
        raise ResumeRefused(
            f"The run began with token {stored.token_fingerprint}; this invocation uses "
            f"token {requested.token_fingerprint}. A token of another organisation would "
            "apply rows a second time there.",
            hint=(
                "Use the token the run began with; if it was rotated or revoked, resume with "
                "--allow-token-change and a new token of the same organisation (its "
                "idempotency keys still replay); or pass --restart to begin a new job."
            ),
        )


# ── transitions ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Register:
    """Row ``row`` exists and is pending. A second Register of a known row is a no-op.

    ``body_hash`` and ``idempotency_key`` are None for rows that never get a request body
    (for instance rows rejected by local validation).

    With ``sent_at`` (epoch seconds) it also records that attempt ``attempt`` was sent, in
    one statement: exactly ``Register`` followed by ``InFlight(row, idempotency_key,
    attempt, at=sent_at)``. A known row that is still open (pending, in flight, failed) goes
    in flight; for a done or rejected row it is ignored and counted, like that ``InFlight``.
    """

    row: int
    row_key: str
    body_hash: str | None
    idempotency_key: str | None
    attempt: int = 0
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    """Attempt ``attempt`` (1-based) of the row's request was sent at ``at`` (epoch seconds).

    The first key recorded for a row is kept; ``first_sent_at`` keeps the earliest send.
    """

    row: int
    idempotency_key: str
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class Done:
    """The row took effect on the server (``note``: created, already_existed, replayed …)."""

    row: int
    server_id: str | None
    note: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The row was refused for good; ``reason`` must not quote a personal value."""

    row: int
    field: str | None
    code: str
    reason: str
    #: The API's X-Request-Id of the refusing response (kept in ``note``), for support.
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The row's retries ran out (outcome possibly unknown); a resume sends it again."""

    row: int
    code: str
    reason: str
    #: The API's X-Request-Id of the last failed attempt (kept in ``note``), if any.
    request_id: str | None = None


Transition = Register | InFlight | Done | Rejected | Failed


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One row of the journal as stored. Times are epoch seconds."""

    row: int
    row_key: str
    body_hash: str | None
    state: RowState
    attempts: int
    idempotency_key: str | None
    first_sent_at: float | None
    server_id: str | None
    note: str | None
    field: str | None
    code: str | None
    reason: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class JournalStatistics:
    """Counters of this journal object since it was opened (not persisted)."""

    commits: int
    transitions: int
    ignored: int
    buffered: int
    commit_seconds: float


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """A consistent picture of a run, read from another process while the run goes on.

    ``done_per_second`` counts rows that became ``done`` during the last minute (or since the
    job began, if that is shorter). ``remaining`` = pending + in_flight + failed.
    """

    job: JobSummary
    counts: Mapping[RowState, int]
    total: int
    remaining: int
    done_per_second: float
    started_at: float
    updated_at: float
    taken_at: float
    meta: Mapping[str, str]


# ── schema ───────────────────────────────────────────────────────────────────────────────

_SCHEMA: Final = (
    """CREATE TABLE job (
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
    )""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE rows (
        row_no INTEGER PRIMARY KEY,
        row_key TEXT NOT NULL,
        body_hash TEXT,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'in_flight', 'done', 'rejected', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT,
        first_sent_at REAL,
        server_id TEXT,
        note TEXT,
        field TEXT,
        code TEXT,
        reason TEXT,
        updated_at REAL NOT NULL
    )""",
    # counts() and the status rate ("done in the last minute") are index-only scans.
    "CREATE INDEX rows_state_updated ON rows (state, updated_at)",
)

_JOB_COLUMNS: Final = (
    "job_id, kind, input_path, input_sha256, base_url, token_fingerprint, config_json, "
    "created_at, schema_version"
)
_ROW_COLUMNS: Final = (
    "row_no, row_key, body_hash, state, attempts, idempotency_key, first_sent_at, "
    "server_id, note, field, code, reason, updated_at"
)

# The statements that insert a row are built from a head, one VALUES tuple and a tail, so a
# group of them can run as one multi-row statement (see _apply_grouped).
_REGISTER_PARTS: Final = (
    "INSERT INTO rows (row_no, row_key, body_hash, state, attempts, idempotency_key, "
    "updated_at) VALUES ",
    "(?, ?, ?, 'pending', 0, ?, ?)",
    " ON CONFLICT (row_no) DO NOTHING",
)
# Register + InFlight in one statement: a new row is inserted in flight; a known one gets
# exactly the _SQL_IN_FLIGHT update (same guard, same columns), its row_key/body_hash kept.
_REGISTER_IN_FLIGHT_PARTS: Final = (
    "INSERT INTO rows (row_no, row_key, body_hash, state, attempts, idempotency_key, "
    "first_sent_at, updated_at) VALUES ",
    "(?, ?, ?, 'in_flight', max(0, ?), ?, ?, ?)",
    " ON CONFLICT (row_no) DO UPDATE SET state = 'in_flight', "
    "attempts = max(attempts, excluded.attempts), "
    "idempotency_key = coalesce(idempotency_key, excluded.idempotency_key), "
    "first_sent_at = coalesce(first_sent_at, excluded.first_sent_at), field = NULL, "
    "code = NULL, reason = NULL, updated_at = excluded.updated_at "
    "WHERE state IN ('pending', 'in_flight', 'failed')",
)
# Register + InFlight + Done of one row in one statement (commit_batch only, for a row whose
# request was sent and answered within one batch): the row ends exactly as the three
# statements in a row would leave it; a done or rejected row is left alone (ignored).
_REGISTER_DONE_PARTS: Final = (
    "INSERT INTO rows (row_no, row_key, body_hash, state, attempts, idempotency_key, "
    "first_sent_at, server_id, note, updated_at) VALUES ",
    "(?, ?, ?, 'done', max(0, ?), ?, ?, ?, ?, ?)",
    " ON CONFLICT (row_no) DO UPDATE SET state = 'done', "
    "attempts = max(attempts, excluded.attempts), "
    "idempotency_key = coalesce(idempotency_key, excluded.idempotency_key), "
    "first_sent_at = coalesce(first_sent_at, excluded.first_sent_at), "
    "server_id = excluded.server_id, note = excluded.note, field = NULL, code = NULL, "
    "reason = NULL, updated_at = excluded.updated_at "
    "WHERE state IN ('pending', 'in_flight', 'failed')",
)
_SQL_REGISTER: Final = "".join(_REGISTER_PARTS)
_SQL_REGISTER_IN_FLIGHT: Final = "".join(_REGISTER_IN_FLIGHT_PARTS)
_SQL_REGISTER_DONE: Final = "".join(_REGISTER_DONE_PARTS)
_INSERT_PARTS: Final = {
    "".join(parts): parts
    for parts in (_REGISTER_PARTS, _REGISTER_IN_FLIGHT_PARTS, _REGISTER_DONE_PARTS)
}
#: Most rows in one multi-row statement (9 parameters each: below SQLite's historical limit
#: of 999 variables per statement).
_MAX_ROWS_PER_STATEMENT: Final = 64
_SQL_IN_FLIGHT: Final = (
    "UPDATE rows SET state = 'in_flight', attempts = max(attempts, ?), "
    "idempotency_key = coalesce(idempotency_key, ?), "
    "first_sent_at = coalesce(first_sent_at, ?), field = NULL, code = NULL, reason = NULL, "
    "updated_at = ? WHERE row_no = ? AND state IN ('pending', 'in_flight', 'failed')"
)
_SQL_DONE: Final = (
    "UPDATE rows SET state = 'done', server_id = ?, note = ?, field = NULL, code = NULL, "
    "reason = NULL, updated_at = ? "
    "WHERE row_no = ? AND state IN ('pending', 'in_flight', 'failed')"
)
_SQL_REJECTED: Final = (
    "UPDATE rows SET state = 'rejected', field = ?, code = ?, reason = ?, note = ?, "
    "updated_at = ? "
    "WHERE row_no = ? AND state IN ('pending', 'in_flight', 'failed')"
)
_SQL_FAILED: Final = (
    "UPDATE rows SET state = 'failed', field = NULL, code = ?, reason = ?, note = ?, "
    "updated_at = ? "
    "WHERE row_no = ? AND state IN ('pending', 'in_flight', 'failed')"
)


def _statement(t: Transition, now: float) -> tuple[str, tuple[object, ...]]:
    """Return the SQL and parameters that apply ``t`` at wall-clock time ``now``."""
    match t:
        case Register(sent_at=None):
            return _SQL_REGISTER, (t.row, t.row_key, t.body_hash, t.idempotency_key, now)
        case Register():
            return _SQL_REGISTER_IN_FLIGHT, (
                t.row,
                t.row_key,
                t.body_hash,
                t.attempt,
                t.idempotency_key,
                t.sent_at,
                now,
            )
        case InFlight():
            return _SQL_IN_FLIGHT, (t.attempt, t.idempotency_key, t.at, now, t.row)
        case Done():
            return _SQL_DONE, (t.server_id, t.note, now, t.row)
        case Rejected():
            return _SQL_REJECTED, (t.field, t.code, t.reason, t.request_id, now, t.row)
        case Failed():
            return _SQL_FAILED, (t.code, t.reason, t.request_id, now, t.row)
        case _:
            assert_never(t)


def _batch_statements(
    transitions: Iterable[Transition], now: float
) -> list[tuple[int, str, tuple[object, ...]]]:
    """(row, SQL, parameters) of each transition, in order, with one merge: a register-and-
    send (``Register`` with ``sent_at``) directly followed, in its row's own order, by the
    row's ``Done`` becomes one ``_SQL_REGISTER_DONE`` at the register's place (the usual
    case: a row sent and answered within one group commit)."""
    entries: list[tuple[int, str, tuple[object, ...]]] = []
    sent: dict[int, tuple[int, Register]] = {}  # row → its last entry, a register-and-send
    for t in transitions:
        row = t.row
        if isinstance(t, Done) and row in sent:
            index, reg = sent.pop(row)
            entries[index] = (
                row,
                _SQL_REGISTER_DONE,
                (
                    row,
                    reg.row_key,
                    reg.body_hash,
                    reg.attempt,
                    reg.idempotency_key,
                    reg.sent_at,
                    t.server_id,
                    t.note,
                    now,
                ),
            )
            continue
        sent.pop(row, None)
        sql, params = _statement(t, now)
        if isinstance(t, Register) and t.sent_at is not None:
            sent[row] = (len(entries), t)
        entries.append((row, sql, params))
    return entries


def _grouped_statements(
    transitions: Iterable[Transition], now: float
) -> list[tuple[str, list[tuple[object, ...]]]]:
    """The batch as (SQL, parameter rows) groups, with the same effect as in order.

    Each statement reads and writes only its own row, so statements of different rows
    commute and only each row's own order matters: the n-th statement of a row in the batch
    goes to layer n, layers run in order, and within a layer statements are grouped by SQL
    (a batch of a few hundred rows sent and answered becomes two or three groups).
    """
    seen: dict[int, int] = {}
    layers: list[dict[str, list[tuple[object, ...]]]] = []
    for row, sql, params in _batch_statements(transitions, now):
        layer = seen.get(row, 0)
        seen[row] = layer + 1
        if layer == len(layers):
            layers.append({})
        layers[layer].setdefault(sql, []).append(params)
    return [(sql, rows) for groups in layers for sql, rows in groups.items()]


@functools.lru_cache(maxsize=32)
def _multi_row_sql(sql: str, rows: int) -> str:
    head, values, tail = _INSERT_PARTS[sql]
    return head + ", ".join([values] * rows) + tail


def _execute_group(conn: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> int:
    """Run ``sql`` for every parameter row; return how many rows of the table it changed.

    Inserting statements run as multi-row statements of 64, 32, … 1 rows (a handful of SQL
    texts, so they stay in the statement cache); others through ``executemany``. Fewer
    statements matter beyond SQLite's own work: each one releases and re-takes the GIL,
    a hand-off with the event loop's thread.
    """
    if sql not in _INSERT_PARTS or len(rows) == 1:
        return conn.executemany(sql, rows).rowcount
    changed = 0
    start = 0
    while start < len(rows):
        size = min(_MAX_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        params = [value for row in chunk for value in row]
        changed += conn.execute(_multi_row_sql(sql, size), params).rowcount
        start += size
    return changed


def _apply_grouped(conn: sqlite3.Connection, transitions: Sequence[Transition], now: float) -> bool:
    """Apply the batch group by group; False as soon as a transition was ignored.

    Only a plain ``Register`` may change nothing (a known row); every other statement changes
    its row or is ignored, so a group changing fewer rows than its size means "ignored".
    """
    for sql, rows in _grouped_statements(transitions, now):
        if _execute_group(conn, sql, rows) < len(rows) and sql != _SQL_REGISTER:
            return False
    return True


def _apply_in_order(
    conn: sqlite3.Connection, transitions: Sequence[Transition], now: float
) -> list[int]:
    """Apply the batch one statement at a time, in order; return the ignored rows."""
    ignored: list[int] = []
    for t in transitions:
        sql, params = _statement(t, now)
        if conn.execute(sql, params).rowcount == 0 and sql != _SQL_REGISTER:
            ignored.append(t.row)
    return ignored


# ── files ────────────────────────────────────────────────────────────────────────────────


def journal_files(db_path: str | os.PathLike[str]) -> list[Path]:
    """Return the database and its ``-wal`` / ``-shm`` side files that exist right now."""
    base = Path(db_path)
    candidates = (base, Path(f"{base}-wal"), Path(f"{base}-shm"))
    return [p for p in candidates if p.exists()]


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


def _resolve_db(path: str | os.PathLike[str]) -> Path:
    """Return the database path: ``path`` itself if it names a database file (``.sqlite``,
    ``.sqlite3``, ``.db``), else ``path / JOURNAL_NAME`` (``path`` is a run directory)."""
    candidate = Path(path)
    return candidate if candidate.suffix in _DB_SUFFIXES else candidate / JOURNAL_NAME


def _create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 (refusing if it exists), its directory 0700 if missing.

    SQLite accepts an empty file as an empty database and gives ``-wal``/``-shm`` the
    database file's mode, so all three are owner-only from their first byte.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=_DIR_MODE, parents=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(path, flags, _FILE_MODE))


def _take_writer_lock(db: Path) -> int:
    """Take the exclusive writer lock of ``db``; raise ``ResumeRefused`` if another holds it.

    A separate lock file, because opening and closing another descriptor on the database
    itself would drop SQLite's own POSIX locks on it.
    """
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ResumeRefused(
            f"Another flexpay-batch process is using the journal {db}.",
            hint="Wait for it to finish (see `flexpay-batch status RUN_DIR`), or stop it.",
        ) from None
    return fd


def _connect(db: Path) -> sqlite3.Connection:
    """Open ``db`` for writing: autocommit mode (we issue BEGIN), WAL, synchronous=FULL."""
    # check_same_thread=False: AsyncJournalWriter commits from a worker thread; every use of
    # the connection is serialised by Journal._lock.
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        _configure_writer(conn, db)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure_writer(conn: sqlite3.Connection, db: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db} is not a flexpay-batch journal ({exc}).") from exc
    if str(mode).lower() != "wal":
        raise UsageError(f"The journal {db} cannot use WAL mode (got {mode!r}).")
    # FULL: the WAL is fsynced at every commit, so a commit also survives power loss.
    # Measured (20k transitions, batches of 200): 1.8 ms per commit with FULL against 1.2 ms
    # with NORMAL, ~12 us per transition: some 80k transitions/s, hundreds of times what the
    # API's rate limits let a run send. One commit per transition would cost 0.2 ms each.
    conn.execute("PRAGMA synchronous = FULL")


def _open_writer(db: Path) -> tuple[int, sqlite3.Connection]:
    """Take the writer lock, then connect; release the lock again if connecting fails."""
    lock_fd = _take_writer_lock(db)
    try:
        return lock_fd, _connect(db)
    except BaseException:
        os.close(lock_fd)
        raise


def _remove_journal(db: Path) -> None:
    """Delete a journal this process just failed to create (never an existing one)."""
    for path in journal_files(db):
        path.unlink(missing_ok=True)


def _connect_readonly(db: Path) -> sqlite3.Connection:
    """Open ``db`` read-only through a ``mode=ro`` URI; WAL lets it read beside a writer."""
    if not db.is_file():
        raise UsageError(f"No flexpay-batch journal at {db}.")
    uri = f"file:{urllib.parse.quote(str(db.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _check_schema_version(conn: sqlite3.Connection, db: Path) -> None:
    """Refuse a database that is not a journal, or a journal of another schema version."""
    try:
        found = conn.execute("SELECT schema_version FROM job WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db} is not a flexpay-batch journal ({exc}).") from exc
    if found is None:
        raise UsageError(f"{db} is not a flexpay-batch journal (no job recorded).")
    if found[0] != SCHEMA_VERSION:
        raise ResumeRefused(
            f"The journal {db} has schema version {found[0]}; this flexpay-batch reads "
            f"version {SCHEMA_VERSION}.",
            hint="Resume it with the flexpay-batch version that began it.",
        )


def _read_job(conn: sqlite3.Connection, db: Path, *, with_secret: bool) -> JobInfo:
    """Read the job row; the secret only when ``with_secret`` (never for status readers)."""
    _check_schema_version(conn, db)
    columns = _JOB_COLUMNS + (", secret" if with_secret else "")
    found = conn.execute(f"SELECT {columns} FROM job WHERE id = 1").fetchone()  # noqa: S608
    return JobInfo(
        job_id=found[0],
        kind=found[1],
        input_path=found[2],
        input_sha256=found[3],
        base_url=found[4],
        token_fingerprint=found[5],
        config_json=found[6],
        created_at=found[7],
        schema_version=found[8],
        # status readers never select the secret; a placeholder keeps JobInfo total.
        secret=found[9] if with_secret else b"",
    )


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
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


def _row_record(values: Sequence[object]) -> RowRecord:
    return RowRecord(
        row=cast(int, values[0]),
        row_key=cast(str, values[1]),
        body_hash=cast("str | None", values[2]),
        state=RowState(str(values[3])),
        attempts=cast(int, values[4]),
        idempotency_key=cast("str | None", values[5]),
        first_sent_at=cast("float | None", values[6]),
        server_id=cast("str | None", values[7]),
        note=cast("str | None", values[8]),
        field=cast("str | None", values[9]),
        code=cast("str | None", values[10]),
        reason=cast("str | None", values[11]),
        updated_at=cast(float, values[12]),
    )


def _counts(conn: sqlite3.Connection) -> dict[RowState, int]:
    result = dict.fromkeys(RowState, 0)
    for state, n in conn.execute("SELECT state, count(*) FROM rows GROUP BY state"):
        result[RowState(state)] = n
    return result


# ── the journal ──────────────────────────────────────────────────────────────────────────


class Journal:
    """The writer's handle on a run's journal; see the module docstring for the contract.

    Build it with ``create``, ``open`` or ``open_or_create``; close it (or use ``with``),
    which flushes the buffer. ``clock`` (monotonic seconds) times group commits,
    ``wall_clock`` (epoch seconds) stamps ``updated_at``; both are injectable for tests.
    """

    __slots__ = (
        "_buffer",
        "_buffer_since",
        "_clock",
        "_commit_seconds",
        "_commits",
        "_conn",
        "_ignored",
        "_job",
        "_lock",
        "_lock_fd",
        "_transitions",
        "_wall_clock",
        "max_batch",
        "max_delay",
        "path",
    )

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int,
        job: JobInfo,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Wrap an open connection; use ``create`` / ``open`` / ``open_or_create`` instead."""
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self.path = path
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._job = job
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._buffer: list[Transition] = []
        self._buffer_since = 0.0
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
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Create a new journal for ``job`` at ``path`` (a database file or a run directory).

        Raises ``FileExistsError`` if a journal is already there: a job is never overwritten.
        """
        db = _resolve_db(path)
        _create_private_file(db)
        try:
            lock_fd, conn = _open_writer(db)
        except BaseException:
            _remove_journal(db)
            raise
        try:
            cls._write_schema(conn, job, wall_clock())
        except BaseException:
            conn.close()
            os.close(lock_fd)
            _remove_journal(db)  # half a journal would later be refused as "not a journal"
            raise
        return cls(
            db,
            conn,
            lock_fd,
            job,
            max_batch=max_batch,
            max_delay=max_delay,
            clock=clock,
            wall_clock=wall_clock,
        )

    @staticmethod
    def _write_schema(conn: sqlite3.Connection, job: JobInfo, now: float) -> None:
        with _write_transaction(conn):
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO job (id, job_id, kind, input_path, input_sha256, base_url, "
                "token_fingerprint, config_json, secret, created_at, updated_at, schema_version) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.kind,
                    job.input_path,
                    job.input_sha256,
                    job.base_url,
                    job.token_fingerprint,
                    job.config_json,
                    job.secret,
                    job.created_at,
                    now,
                    job.schema_version,
                ),
            )

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Open an existing journal for writing (a database file or a run directory).

        Raises ``UsageError`` if there is none or it is not a journal, ``ResumeRefused`` if
        another process holds it or its schema version is not this one.
        """
        db = _resolve_db(path)
        if not db.is_file():
            raise UsageError(f"No flexpay-batch journal at {db}.")
        lock_fd, conn = _open_writer(db)
        try:
            job = _read_job(conn, db, with_secret=True)
        except BaseException:
            conn.close()
            os.close(lock_fd)
            raise
        return cls(
            db,
            conn,
            lock_fd,
            job,
            max_batch=max_batch,
            max_delay=max_delay,
            clock=clock,
            wall_clock=wall_clock,
        )

    @classmethod
    def open_or_create(
        cls,
        path: str | os.PathLike[str],
        job: JobInfo,
        *,
        allow_token_change: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Resume the journal at ``path`` if ``job`` may continue it, else create it.

        On resume the *stored* job (its id and secret) is the journal's ``job``; ``job`` only
        serves for ``check_resumable``, whose ``ResumeRefused`` propagates.
        """
        if not _resolve_db(path).exists():
            return cls.create(
                path,
                job,
                max_batch=max_batch,
                max_delay=max_delay,
                clock=clock,
                wall_clock=wall_clock,
            )
        journal = cls.open(
            path, max_batch=max_batch, max_delay=max_delay, clock=clock, wall_clock=wall_clock
        )
        try:
            check_resumable(journal.job, job, allow_token_change=allow_token_change)
        except BaseException:
            journal.close()
            raise
        return journal

    # lifecycle

    @property
    def job(self) -> JobInfo:
        """The job this journal belongs to, as stored when it was created."""
        return self._job

    def close(self) -> None:
        """Flush the buffer, close the database and release the writer lock. Idempotent."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self.flush()
            finally:
                self._conn.close()
                self._conn = None
                os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the journal is closed")
        return self._conn

    # writing

    def record(self, transition: Transition) -> bool:
        """Buffer ``transition``; commit the buffer if it is full or its oldest entry is due.

        Returns True when this call committed (everything recorded so far is then durable).
        A transition that is only buffered is lost if the process dies before the next commit.
        """
        with self._lock:
            if not self._buffer:
                self._buffer_since = self._clock()
            self._buffer.append(transition)
            if self._due():
                self.flush()
                return True
            return False

    def record_now(self, transition: Transition) -> None:
        """Record ``transition`` and commit it with everything buffered before it."""
        with self._lock:
            self._buffer.append(transition)
            self.flush()

    def flush_if_due(self) -> bool:
        """Commit the buffer if its oldest entry waited ``max_delay``; True if it committed."""
        with self._lock:
            if self._buffer and self._due():
                self.flush()
                return True
            return False

    def _due(self) -> bool:
        return (
            len(self._buffer) >= self.max_batch
            or self._clock() - self._buffer_since >= self.max_delay
        )

    def flush(self) -> int:
        """Commit every buffered transition in one transaction; return how many there were."""
        with self._lock:
            batch = self._buffer
            if batch:
                self.commit_batch(batch)
                self._buffer = []
            return len(batch)

    def commit_batch(self, transitions: Sequence[Transition]) -> int:
        """Apply ``transitions`` in order in one transaction and commit it (fsynced).

        Returns how many were ignored (backwards moves, unknown rows). On an error nothing of
        the batch is applied and the error propagates: the run must stop, not go on unjournaled.

        The statements are grouped into ``executemany`` calls (``_grouped_statements``: the
        same final rows as one by one). If any transition turns out ignored, the grouped
        attempt is rolled back to a savepoint and the batch re-applied one statement at a
        time, so the ignored rows can be named.
        """
        with self._lock:
            conn = self._db()
            started = time.perf_counter()
            now = self._wall_clock()
            ignored: list[int] = []
            with _write_transaction(conn):
                conn.execute("SAVEPOINT grouped")
                if not _apply_grouped(conn, transitions, now):
                    conn.execute("ROLLBACK TO grouped")
                    ignored = _apply_in_order(conn, transitions, now)
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
        """Store a run-level fact (e.g. the payroll run id) and commit it at once.

        The buffer is committed first in the same transaction, so every transition recorded
        before this call is durable when it returns.
        """
        with self._lock:
            self.flush()
            conn = self._db()
            with _write_transaction(conn):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def reset_rejected(self) -> int:
        """Move every rejected row back to pending (``--retry-rejected``); return how many.

        Flushes first. Attempts, key and ``first_sent_at`` are kept: the row is the same row.
        """
        with self._lock:
            self.flush()
            conn = self._db()
            with _write_transaction(conn):
                cursor = conn.execute(
                    "UPDATE rows SET state = 'pending', field = NULL, code = NULL, "
                    "reason = NULL, updated_at = ? WHERE state = 'rejected'",
                    (self._wall_clock(),),
                )
            return cursor.rowcount

    # reading (committed data only: flush first to see buffered transitions)

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
                .execute(f"SELECT {_ROW_COLUMNS} FROM rows WHERE row_no = ?", (row_no,))  # noqa: S608
                .fetchone()
            )
            return None if found is None else _row_record(found)

    def iter_rows(self) -> Iterator[RowRecord]:
        """Yield every committed row in row order, a page at a time (no lock held between)."""
        last = -1
        while True:
            with self._lock:
                page = (
                    self._db()
                    .execute(
                        f"SELECT {_ROW_COLUMNS} FROM rows WHERE row_no > ? "  # noqa: S608
                        "ORDER BY row_no LIMIT ?",
                        (last, _PAGE_ROWS),
                    )
                    .fetchall()
                )
            if not page:
                return
            yield from map(_row_record, page)
            last = page[-1][0]

    def row_states(self) -> dict[int, RowState]:
        """Return row number → committed state for every registered row."""
        with self._lock:
            cursor = self._db().execute("SELECT row_no, state FROM rows")
            return {row_no: RowState(state) for row_no, state in cursor}

    def settled_rows(self) -> set[int]:
        """Return the rows a default resume skips: done or rejected (failed rows are retried)."""
        with self._lock:
            cursor = self._db().execute(
                "SELECT row_no FROM rows WHERE state IN (?, ?)", _SETTLED_STATES
            )
            return {row_no for (row_no,) in cursor}

    def counts(self) -> dict[RowState, int]:
        """Return committed rows per state; every state is present, zero included."""
        with self._lock:
            return _counts(self._db())

    def statistics(self) -> JournalStatistics:
        """Return this object's commit counters (for progress and benchmarks)."""
        with self._lock:
            return JournalStatistics(
                commits=self._commits,
                transitions=self._transitions,
                ignored=self._ignored,
                buffered=len(self._buffer),
                commit_seconds=self._commit_seconds,
            )

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check``; ``["ok"]`` means the database is sound."""
        with self._lock:
            return [line for (line,) in self._db().execute("PRAGMA integrity_check")]


# ── asyncio ──────────────────────────────────────────────────────────────────────────────


class AsyncJournalWriter:
    """Group commits from asyncio without ever blocking the event loop on an fsync.

    ::

        with Journal.open_or_create(db, job) as journal:
            async with AsyncJournalWriter(journal) as writer:
                await writer.record(Done(row=2, server_id="emp_1", note="created"))
                await writer.flush()          # everything recorded so far is durable

    ``record`` appends to an in-memory buffer (waiting only while ``max_buffer`` transitions
    are queued: backpressure if the disk falls behind). A background task commits the buffer
    through ``Journal.commit_batch`` in a worker thread, one commit at a time, as soon as it
    holds ``max_batch`` transitions or its oldest one waited ``max_delay`` seconds. Leaving the
    ``async with`` commits the rest. A failed commit raises out of the ``async with`` and
    cancels its body: a run must not go on with a journal that no longer records.
    While a writer is open, record through it only (not through ``Journal.record``), so that
    transitions of one row are committed in the order they happened.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        max_batch: int | None = None,
        max_delay: float | None = None,
        max_buffer: int | None = None,
    ) -> None:
        """Use ``journal``'s batch settings unless given; ``max_buffer`` defaults to 10 batches."""
        self._journal = journal
        self._max_batch = journal.max_batch if max_batch is None else max_batch
        self._max_delay = journal.max_delay if max_delay is None else max_delay
        self._max_buffer = 10 * self._max_batch if max_buffer is None else max_buffer
        self._buffer: list[Transition] = []
        self._recorded = 0
        self._committed = 0
        self._flush_requested = False
        self._closing = False
        self._failed = False
        self._changed = anyio.Event()
        self._thread_limiter = anyio.CapacityLimiter(1)
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        self._notify()
        assert self._task_group is not None
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            await self._commit_leftovers()

    async def _commit_leftovers(self) -> None:
        """Commit what a failed or cancelled body left buffered: it did happen.

        Shielded, so an outer cancellation cannot drop it; skipped if the journal itself
        failed (its error is already on its way out and a retry would only mask it).
        """
        if not self._buffer or self._failed:
            return
        batch, self._buffer = self._buffer, []
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                self._journal.commit_batch, batch, limiter=self._thread_limiter
            )
        self._committed += len(batch)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def record(self, transition: Transition) -> None:
        """Queue ``transition`` for the next group commit (waits while the buffer is full)."""
        if self._closing:
            raise RuntimeError("the journal writer is closed")
        buffer = self._buffer
        while len(buffer) >= self._max_buffer:
            await self._wait_change()
            buffer = self._buffer
        buffer.append(transition)
        self._recorded += 1
        # Wake the committer when a batch starts (its timer) and when it is full; not on
        # every record past full (each wake-up makes a new Event). It re-checks the size
        # whenever it looks, so one wake-up at the threshold is enough.
        size = len(buffer)
        if size == 1 or size == self._max_batch:
            self._notify()

    async def flush(self) -> None:
        """Return once everything recorded before this call is committed."""
        target = self._recorded
        while self._committed < target:
            if self._failed or self._task_group is None:
                raise RuntimeError("the journal writer is not running")
            self._flush_requested = True
            self._notify()
            await self._wait_change()

    async def record_now(self, transition: Transition) -> None:
        """Record ``transition`` and return once it is committed."""
        await self.record(transition)
        await self.flush()

    async def set_meta(self, key: str, value: str) -> None:
        """Commit everything recorded so far, then store ``key`` = ``value`` durably."""
        await self.flush()
        await anyio.to_thread.run_sync(
            self._journal.set_meta, key, value, limiter=self._thread_limiter
        )

    async def _run(self) -> None:
        while True:
            await self._wait_due()
            if not self._buffer:
                return  # closing, and nothing left to commit
            batch, self._buffer = self._buffer, []
            self._flush_requested = False
            self._notify()  # room in the buffer again
            try:
                # Shielded: a batch taken out of the buffer is committed even if the run is
                # being cancelled (it takes milliseconds); cancellation lands at the next wait.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        self._journal.commit_batch, batch, limiter=self._thread_limiter
                    )
            except BaseException:
                self._failed = True
                raise
            self._committed += len(batch)
            self._notify()

    async def _wait_due(self) -> None:
        """Return when the buffer should be committed, or when closing with it empty."""
        while not self._buffer:
            if self._closing:
                return
            await self._wait_change()
        with anyio.move_on_after(self._max_delay):
            while not (
                len(self._buffer) >= self._max_batch or self._flush_requested or self._closing
            ):
                await self._wait_change()


# ── status from another process ─────────────────────────────────────────────────────────


def status_snapshot(path: str | os.PathLike[str], *, now: float | None = None) -> StatusSnapshot:
    """Read a run's status without writing anything, even while its writer is committing.

    ``path`` is a run directory or a journal file. The read happens in one transaction, so
    counts, rate and times agree with each other. Raises ``UsageError`` if there is no journal.
    """
    db = _resolve_db(path)
    conn = _connect_readonly(db)
    try:
        conn.execute("BEGIN")
        job = _read_job(conn, db, with_secret=False)
        taken_at = time.time() if now is None else now
        counts = _counts(conn)
        (updated_at,) = conn.execute("SELECT updated_at FROM job WHERE id = 1").fetchone()
        window = max(1.0, min(RATE_WINDOW_SECONDS, taken_at - job.created_at))
        (done_recently,) = conn.execute(
            "SELECT count(*) FROM rows WHERE state = 'done' AND updated_at >= ?",
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
        remaining=sum(counts[s] for s in _OPEN_STATES),
        done_per_second=done_recently / window,
        started_at=job.created_at,
        updated_at=updated_at,
        taken_at=taken_at,
        meta=meta,
    )
