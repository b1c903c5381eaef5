"""The SQL that applies transitions, and the optimiser that applies a batch in few statements.

::

    if not apply_grouped(conn, batch, now):      # inside the commit's transaction
        ignored_rows = apply_in_order(conn, batch, now)   # after rolling back to a savepoint

Every statement changes only its own row and only while that row is open (pending, in
flight, failed): that guard is what makes transitions monotone. ``now`` is epoch seconds,
stored in ``updated_at``.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Final, assert_never

from flexpay_batch.core.states import OPEN
from flexpay_batch.journal.schema import sql_words
from flexpay_batch.journal.transitions import Done, Failed, InFlight, Register, Rejected, Transition

__all__ = ["apply_grouped", "apply_in_order"]

#: The guard of every transition: the states a row may leave. Spelled from ``core.states`` (fixed
#: words, no input), hence the S608 exemptions below.
_OPEN: Final = sql_words(OPEN)

# The statements that insert a row are built from a head, one VALUES tuple and a tail, so a
# group of them can run as one multi-row statement (see apply_grouped).
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
    f"WHERE state IN {_OPEN}",
)
# Register + InFlight + Done of one row in one statement (commit_batch only, for a row whose
# request was sent and answered within one batch): the row ends exactly as the three
# statements in a row would leave it; a settled row is left alone (ignored).
_REGISTER_DONE_PARTS: Final = (
    "INSERT INTO rows (row_no, row_key, body_hash, attempts, idempotency_key, "
    "first_sent_at, state, server_id, request_id, updated_at) VALUES ",
    "(?, ?, ?, max(0, ?), ?, ?, ?, ?, ?, ?)",
    " ON CONFLICT (row_no) DO UPDATE SET state = excluded.state, "
    "attempts = max(attempts, excluded.attempts), "
    "idempotency_key = coalesce(idempotency_key, excluded.idempotency_key), "
    "first_sent_at = coalesce(first_sent_at, excluded.first_sent_at), "
    "server_id = excluded.server_id, request_id = excluded.request_id, field = NULL, "
    "code = NULL, reason = NULL, updated_at = excluded.updated_at "
    f"WHERE state IN {_OPEN}",
)
_SQL_REGISTER: Final = "".join(_REGISTER_PARTS)
_SQL_REGISTER_IN_FLIGHT: Final = "".join(_REGISTER_IN_FLIGHT_PARTS)
_SQL_REGISTER_DONE: Final = "".join(_REGISTER_DONE_PARTS)
_INSERT_PARTS: Final = {
    "".join(parts): parts
    for parts in (_REGISTER_PARTS, _REGISTER_IN_FLIGHT_PARTS, _REGISTER_DONE_PARTS)
}
#: Most rows in one multi-row statement (10 parameters at most: below SQLite's historical limit
#: of 999 variables per statement).
_MAX_ROWS_PER_STATEMENT: Final = 64
_SQL_IN_FLIGHT: Final = (
    "UPDATE rows SET state = 'in_flight', attempts = max(attempts, ?), "  # noqa: S608
    "idempotency_key = coalesce(idempotency_key, ?), "
    "first_sent_at = coalesce(first_sent_at, ?), field = NULL, code = NULL, reason = NULL, "
    f"updated_at = ? WHERE row_no = ? AND state IN {_OPEN}"
)
_SQL_DONE: Final = (
    "UPDATE rows SET state = ?, server_id = ?, request_id = ?, field = NULL, code = NULL, "  # noqa: S608
    f"reason = NULL, updated_at = ? WHERE row_no = ? AND state IN {_OPEN}"
)
_SQL_REJECTED: Final = (
    "UPDATE rows SET state = 'rejected', field = ?, code = ?, reason = ?, request_id = ?, "  # noqa: S608
    f"updated_at = ? WHERE row_no = ? AND state IN {_OPEN}"
)
_SQL_FAILED: Final = (
    "UPDATE rows SET state = 'failed', field = NULL, code = ?, reason = ?, request_id = ?, "  # noqa: S608
    f"updated_at = ? WHERE row_no = ? AND state IN {_OPEN}"
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
            return _SQL_DONE, (t.status.value, t.server_id, t.request_id, now, t.row)
        case Rejected():
            return _SQL_REJECTED, (t.field, t.code, t.reason, t.request_id, now, t.row)
        case Failed():
            return _SQL_FAILED, (t.code, t.reason, t.request_id, now, t.row)
        case _:
            assert_never(t)


def _register_done(reg: Register, t: Done, now: float) -> tuple[str, tuple[object, ...]]:
    """``reg`` (a register-and-send) then ``t`` of the same row, as one statement."""
    return _SQL_REGISTER_DONE, _register_done_values(reg, t, now)


def _register_done_values(reg: Register, t: Done, now: float) -> tuple[object, ...]:
    """The parameters of ``_SQL_REGISTER_DONE`` for ``reg`` then ``t``."""
    return (
        t.row,
        reg.row_key,
        reg.body_hash,
        reg.attempt,
        reg.idempotency_key,
        reg.sent_at,
        t.status.value,
        t.server_id,
        t.request_id,
        now,
    )


def _statements(t: Transition, now: float) -> list[tuple[str, tuple[object, ...]]]:
    """The statements of ``t``: its registration's first, if it carries one (a register-and-
    send followed by ``Done`` is one statement)."""
    registration = t.registration if isinstance(t, Done | Rejected | Failed) else None
    if registration is None:
        return [_statement(t, now)]
    if isinstance(t, Done) and registration.sent_at is not None:
        return [_register_done(registration, t, now)]
    return [_statement(registration, now), _statement(t, now)]


def _batch_statements(
    transitions: Iterable[Transition], now: float
) -> list[tuple[int, str, tuple[object, ...]]]:
    """(row, SQL, parameters) of each transition, in order, with one merge: a register-and-
    send (``Register`` with ``sent_at``, alone or as a ``Done``'s registration) directly
    followed, in its row's own order, by the row's ``Done`` becomes one
    ``_SQL_REGISTER_DONE`` at the register's place (the usual case)."""
    entries: list[tuple[int, str, tuple[object, ...]]] = []
    sent: dict[int, tuple[int, Register]] = {}  # row → its last entry, a register-and-send
    for t in transitions:
        row = t.row
        if type(t) is Done and t.registration is not None and t.registration.sent_at is not None:
            # The engine's usual record: one row sent and answered, one statement.
            sent.pop(row, None)
            entries.append((row, *_register_done(t.registration, t, now)))
            continue
        if isinstance(t, Done) and t.registration is None and row in sent:
            index, reg = sent.pop(row)
            entries[index] = (row, *_register_done(reg, t, now))
            continue
        sent.pop(row, None)
        for sql, params in _statements(t, now):
            entries.append((row, sql, params))
        if isinstance(t, Register) and t.sent_at is not None:
            sent[row] = (len(entries) - 1, t)
    return entries


def _sent_and_done_rows(
    transitions: Iterable[Transition], now: float
) -> list[tuple[object, ...]] | None:
    """The batch as ``_SQL_REGISTER_DONE`` parameter rows if it holds only what the engine
    records for a row sent and answered (a ``Done`` carrying its register-and-send), each row
    once: what ``_grouped_statements`` makes of such a batch (one group, in order), built
    without its layers. None for any other batch."""
    rows: list[tuple[object, ...]] = []
    seen: set[int] = set()
    for t in transitions:
        if type(t) is not Done:
            return None
        reg = t.registration
        row = t.row
        if reg is None or reg.sent_at is None or row in seen:
            return None
        seen.add(row)
        rows.append(_register_done_values(reg, t, now))
    return rows


def _grouped_statements(
    transitions: Iterable[Transition], now: float
) -> list[tuple[str, list[tuple[object, ...]]]]:
    """The batch as (SQL, parameter rows) groups, with the same effect as in order.

    Each statement reads and writes only its own row, so statements of different rows
    commute and only each row's own order matters: the n-th statement of a row in the batch
    goes to layer n, layers run in order, and within a layer statements are grouped by SQL
    (a batch of a few hundred rows sent and answered becomes two or three groups).
    """
    sent_and_done = _sent_and_done_rows(transitions, now)
    if sent_and_done is not None:  # the usual batch of a run: one group
        return [(_SQL_REGISTER_DONE, sent_and_done)]
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
        params = list(chain.from_iterable(chunk))
        changed += conn.execute(_multi_row_sql(sql, size), params).rowcount
        start += size
    return changed


def apply_grouped(conn: sqlite3.Connection, transitions: Sequence[Transition], now: float) -> bool:
    """Apply the batch group by group; False as soon as a transition was ignored.

    Only a plain ``Register`` may change nothing (a known row); every other statement changes
    its row or is ignored, so a group changing fewer rows than its size means "ignored".
    """
    for sql, rows in _grouped_statements(transitions, now):
        if _execute_group(conn, sql, rows) < len(rows) and sql != _SQL_REGISTER:
            return False
    return True


def apply_in_order(
    conn: sqlite3.Connection, transitions: Sequence[Transition], now: float
) -> list[int]:
    """Apply the batch one statement at a time, in order; return the ignored rows."""
    ignored: list[int] = []
    for t in transitions:
        for sql, params in _statements(t, now):
            if conn.execute(sql, params).rowcount == 0 and sql != _SQL_REGISTER:
                ignored.append(t.row)
                break
    return ignored
