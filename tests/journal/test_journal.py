"""Tests for the journal store: job identity, resume refusal, transitions, commits, status."""

from __future__ import annotations

import dataclasses
import importlib
import random
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from flexpay_batch.core.errors import ResumeRefused, UsageError
from flexpay_batch.core.keys import body_sha256, idempotency_key, keyed_hash
from flexpay_batch.core.states import RowStatus
from flexpay_batch.journal import statements
from flexpay_batch.journal.files import JOURNAL_NAME, find_values_in_files, journal_files
from flexpay_batch.journal.jobinfo import check_resumable
from flexpay_batch.journal.run_journal import open_run_journal
from flexpay_batch.journal.status import status_snapshot
from flexpay_batch.journal.store import Journal, RowRecord
from flexpay_batch.journal.transitions import (
    Done,
    Failed,
    InFlight,
    Register,
    Rejected,
    Transition,
)
from flexpay_batch.journal.writer import AsyncJournalWriter
from flexpay_batch.sim.testing import FakeClock
from tests.journal.helpers import SHA_A, make_job

CREATED = RowStatus.CREATED
SHA_B = "b" * 64


def register(row: int, secret: bytes = b"s" * 32) -> Register:
    """Return the Register transition the engine would build for a synthetic row."""
    body_hash = body_sha256({"external_id": f"E{row}"})
    return Register(
        row=row,
        row_key=keyed_hash(secret, f"E{row}"),
        body_hash=body_hash,
        idempotency_key=idempotency_key(secret, "onboarding", f"E{row}", body_hash),
    )


def register_and_send(row: int, attempt: int, at: float) -> tuple[Register, InFlight]:
    """``register(row)`` and the InFlight that sends it (attempt ``attempt``, at ``at`` epoch
    seconds) under the idempotency key it registered."""
    reg = register(row)
    assert reg.idempotency_key is not None
    return reg, InFlight(row, reg.idempotency_key, attempt, at=at)


def stored_row(journal: Journal, row: int) -> RowRecord:
    """The journal's committed record of ``row``, which must be registered."""
    record = journal.row(row)
    assert record is not None
    return record


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory path that does not exist yet (the journal creates it)."""
    return tmp_path / "runs" / "job-1"


@pytest.fixture
def journal(run_dir: Path) -> Iterator[Journal]:
    """A fresh journal in a run directory it created."""
    with Journal.create(run_dir, make_job()) as opened:
        yield opened


# ── files and job identity ────────────────────────────────────────────────────────────────


def test_files_are_owner_only(journal: Journal, run_dir: Path) -> None:
    """The run directory is 0700; the database, -wal, -shm and lock files are 0600."""
    journal.commit_batch([register(2)])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    names = {p.name for p in run_dir.iterdir()}
    assert {JOURNAL_NAME, f"{JOURNAL_NAME}-wal", f"{JOURNAL_NAME}-shm"} <= names
    for path in run_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_journal_uses_wal_and_synchronous_full(journal: Journal) -> None:
    """The writer connection runs in WAL mode with synchronous=FULL (2)."""
    conn = journal._db()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_create_refuses_an_existing_journal(journal: Journal, run_dir: Path) -> None:
    """A second create in the same place raises instead of overwriting the job."""
    with pytest.raises(FileExistsError):
        Journal.create(run_dir, make_job())


def test_open_returns_the_stored_job(journal: Journal, run_dir: Path) -> None:
    """Reopening gives back the job as written, secret included."""
    stored = journal.job
    journal.close()
    with Journal.open(run_dir) as reopened:
        assert reopened.job == stored
        assert reopened.job.config == {"concurrency": 8, "limits": "100/min"}


def test_open_accepts_the_database_path(journal: Journal, run_dir: Path) -> None:
    """A path ending in .sqlite names the database itself."""
    journal.close()
    with Journal.open(run_dir / JOURNAL_NAME) as reopened:
        assert reopened.job.job_id == journal.job.job_id


def test_job_repr_hides_the_secret(journal: Journal) -> None:
    """The secret stays out of the job's repr, so a log line cannot leak it."""
    assert "secret" not in repr(journal.job)
    assert journal.job.secret.hex() not in repr(journal.job)


def test_open_without_journal_is_a_usage_error(tmp_path: Path) -> None:
    """Opening a directory that holds no journal says so."""
    with pytest.raises(UsageError, match="No flexpay-batch journal"):
        Journal.open(tmp_path)


def test_open_of_a_foreign_database_is_a_usage_error(tmp_path: Path) -> None:
    """A SQLite file without the job table is not taken for a journal."""
    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).close()
    with pytest.raises(UsageError, match="not a flexpay-batch journal"):
        Journal.open(db)


def test_open_of_a_non_sqlite_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not SQLite at all is refused with a usage error, not a crash."""
    db = tmp_path / "garbage.sqlite"
    db.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(UsageError, match="not a flexpay-batch journal"):
        Journal.open(db)


def test_failed_create_leaves_no_half_journal(run_dir: Path) -> None:
    """If writing the job fails, the new files are removed so a retry can create afresh."""
    broken = dataclasses.replace(make_job(), secret=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        Journal.create(run_dir, broken)
    assert journal_files(run_dir / JOURNAL_NAME) == []
    Journal.create(run_dir, make_job()).close()


def test_second_writer_is_refused(journal: Journal, run_dir: Path) -> None:
    """While one process writes the journal, another cannot open it for writing."""
    with pytest.raises(ResumeRefused, match="Another flexpay-batch process"):
        Journal.open(run_dir)
    journal.close()
    Journal.open(run_dir).close()


def test_other_schema_version_is_refused(journal: Journal, run_dir: Path) -> None:
    """A journal written by another schema version is not resumed."""
    journal._db().execute("UPDATE job SET schema_version = 99")
    journal.close()
    with pytest.raises(ResumeRefused, match="schema version 99"):
        Journal.open(run_dir)


def test_open_run_journal_resumes_with_the_stored_secret(run_dir: Path) -> None:
    """Resuming keeps the first job's id and secret, so keys come out the same."""
    first = make_job()
    open_run_journal(run_dir, first).close()
    with open_run_journal(run_dir, make_job()) as resumed:
        assert resumed.job.job_id == first.job_id
        assert resumed.job.secret == first.secret


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_sha256": SHA_B}, f"input file changed since the run began \\(sha256 {SHA_A}"),
        ({"kind": "payroll"}, "holds a onboarding job"),
        ({"base_url": "https://sandbox.flexpay.dev/v1/"}, "targets https://sandbox"),
        ({"token_fingerprint": "sha256:000000000000"}, "began with token sha256:"),
    ],
)
def test_resume_is_refused_when_the_job_differs(
    run_dir: Path, changes: dict[str, object], message: str
) -> None:
    """Another input, kind, base URL or token refuses the resume with a clear message."""
    open_run_journal(run_dir, make_job()).close()
    with pytest.raises(ResumeRefused, match=message) as refused:
        open_run_journal(run_dir, make_job(**changes))
    assert "--restart" in refused.value.hint
    Journal.open(run_dir).close()  # the refused attempt released the writer lock


def test_resume_allows_a_moved_file_and_a_new_token_on_request() -> None:
    """The input path may change; the token may change only when explicitly allowed."""
    stored = make_job()
    check_resumable(stored, make_job(input_path="/elsewhere/employees.csv"))
    new_token = make_job(token_fingerprint="sha256:0")
    with pytest.raises(ResumeRefused, match="token"):
        check_resumable(stored, new_token)  # the same change, not allowed: refused
    check_resumable(stored, new_token, allow_token_change=True)


def test_unknown_job_kind_is_refused() -> None:
    """A job kind outside the known ones is a programming error."""
    with pytest.raises(ValueError, match="unknown job kind"):
        make_job(kind="paystubs")


# ── transitions ───────────────────────────────────────────────────────────────────────────


def test_row_lifecycle_is_recorded(journal: Journal) -> None:
    """Register, in-flight and done leave one row with its key, attempts and server id."""
    reg, sent = register_and_send(2, 1, at=1_700_000_100.0)
    journal.commit_batch([reg, sent, Done(2, "emp_123", RowStatus.REPLAYED, "req_7")])
    record = stored_row(journal, 2)
    assert (record.status, record.attempts, record.server_id, record.request_id) == (
        RowStatus.REPLAYED,
        1,
        "emp_123",
        "req_7",
    )
    assert record.idempotency_key == reg.idempotency_key
    assert record.row_key == reg.row_key
    assert record.first_sent_at == 1_700_000_100.0


@pytest.mark.parametrize(
    ("final", "later"),
    [
        (Done(2, "emp_1", CREATED), InFlight(2, "fpb_x", 2, at=5.0)),
        (Done(2, "emp_1", CREATED), Rejected(2, "email", "invalid", "email malformed")),
        (Done(2, "emp_1", CREATED), Failed(2, "api_error", "retries exhausted")),
        (Done(2, "emp_1", CREATED), Done(2, "emp_2", RowStatus.REPLAYED)),
        (Rejected(2, "email", "invalid", "email malformed"), InFlight(2, "fpb_x", 2, at=5.0)),
        (Rejected(2, "email", "invalid", "email malformed"), Done(2, "emp_1", CREATED)),
    ],
)
def test_settled_rows_never_move_back(
    journal: Journal, final: Transition, later: Transition
) -> None:
    """After done or rejected, a later transition is ignored and counted, not applied."""
    journal.commit_batch([register(2), final])
    before = journal.row(2)
    journal.commit_batch([later])
    assert journal.row(2) == before
    assert journal.statistics().ignored == 1


def test_failed_rows_go_back_in_flight_with_the_same_key(journal: Journal) -> None:
    """A failed row is retried: attempts grow, first_sent_at and the first key stay."""
    reg, sent = register_and_send(2, 3, at=10.0)
    journal.commit_batch(
        [
            reg,
            sent,
            Failed(2, "timeout", "no answer after 3 attempts", "req_3"),
            InFlight(2, "fpb_other", 1, at=20.0),
        ]
    )
    record = stored_row(journal, 2)
    assert (record.status, record.attempts, record.first_sent_at) == (RowStatus.IN_FLIGHT, 3, 10.0)
    assert record.idempotency_key == reg.idempotency_key
    assert record.code is None
    assert record.request_id == "req_3"  # the last response's, until another one comes


def test_register_of_a_known_row_changes_nothing(journal: Journal) -> None:
    """Re-registering on resume keeps the row's state and is not counted as ignored."""
    journal.commit_batch([register(2), Done(2, "emp_1", CREATED), register(2)])
    record = stored_row(journal, 2)
    assert record.status is RowStatus.CREATED
    assert journal.statistics().ignored == 0


def test_transition_of_an_unknown_row_is_ignored(journal: Journal) -> None:
    """A transition naming a row never registered creates nothing."""
    journal.commit_batch([Done(99, "emp_1", CREATED)])
    assert journal.row(99) is None
    assert journal.statistics().ignored == 1


def test_pending_row_can_be_rejected_directly(journal: Journal) -> None:
    """Local validation rejects a row that never had a request body."""
    journal.commit_batch(
        [
            Register(3, keyed_hash(b"s" * 32, "E3"), None, None),
            Rejected(3, "tax_id", "invalid_format", "tax_id must have 9 digits"),
        ]
    )
    record = stored_row(journal, 3)
    assert (record.status, record.field, record.code) == (
        RowStatus.REJECTED,
        "tax_id",
        "invalid_format",
    )


def test_reset_rejected_makes_rejected_rows_pending(journal: Journal) -> None:
    """--retry-rejected moves rejected rows, and only them, back to pending."""
    journal.commit_batch(
        [
            *(register(row) for row in (2, 3, 4)),
            Rejected(2, "email", "invalid", "email malformed"),
            Done(3, "emp_3", CREATED),
        ]
    )
    assert journal.reset_rejected() == 1
    assert journal.row_statuses() == {
        2: RowStatus.PENDING,
        3: RowStatus.CREATED,
        4: RowStatus.PENDING,
    }
    record = stored_row(journal, 2)
    assert record.reason is None


def test_resume_queries_report_committed_states(journal: Journal) -> None:
    """row_statuses, settled_rows and counts agree on what a resume would skip; every
    status is a key of counts(), zero included."""
    journal.commit_batch(
        [
            *(register(row) for row in range(2, 9)),
            Done(2, "emp_2", CREATED),
            Rejected(3, None, "employee_exists", "conflict"),
            Failed(4, "api_error", "retries exhausted"),
            InFlight(5, "fpb_x", 1, at=1.0),
            Done(7, "emp_7", RowStatus.ALREADY_EXISTED),
            Done(8, "emp_8", RowStatus.ALREADY_EXISTED),
        ]
    )
    assert journal.settled_rows() == {2, 3, 7, 8}
    assert journal.counts() == {
        RowStatus.PENDING: 1,
        RowStatus.IN_FLIGHT: 1,
        RowStatus.CREATED: 1,
        RowStatus.REPLAYED: 0,
        RowStatus.ALREADY_EXISTED: 2,
        RowStatus.REJECTED: 1,
        RowStatus.FAILED: 1,
    }
    assert journal.row_statuses()[4] is RowStatus.FAILED


def test_iter_rows_pages_through_every_row_in_order(journal: Journal) -> None:
    """iter_rows yields all rows in row order across pages."""
    journal.commit_batch([register(row) for row in range(2, 2502)])
    assert [r.row for r in journal.iter_rows()] == list(range(2, 2502))


def test_integrity_check_is_ok(journal: Journal) -> None:
    """A fresh journal passes PRAGMA integrity_check."""
    journal.commit_batch([register(2)])
    assert journal.integrity_check() == ["ok"]


# ── group commits ─────────────────────────────────────────────────────────────────────────


def committed_total(run_dir: Path) -> int:
    """Rows visible to another connection, i.e. committed."""
    return status_snapshot(run_dir).total


def test_set_meta_commits_at_once(journal: Journal, run_dir: Path) -> None:
    """set_meta is committed when it returns; get_meta reads it back, None when absent."""
    journal.commit_batch([register(2), register(3)])
    journal.set_meta("payroll_run_id", "pr_123")
    snapshot = status_snapshot(run_dir)
    assert snapshot.total == 2
    assert snapshot.meta == {"payroll_run_id": "pr_123"}
    assert journal.get_meta("payroll_run_id") == "pr_123"
    assert journal.get_meta("absent") is None


def test_close_is_idempotent(journal: Journal, run_dir: Path) -> None:
    """Closing twice is harmless, and what was committed stays readable."""
    journal.commit_batch([register(2)])
    journal.close()
    journal.close()
    assert committed_total(run_dir) == 1


def _rows_without_time(journal: Journal) -> list[tuple[object, ...]]:
    return [
        dataclasses.astuple(dataclasses.replace(r, updated_at=0.0)) for r in journal.iter_rows()
    ]


PRIOR_STATES: dict[str, list[Transition]] = {
    "absent": [],
    "pending": [register(2)],
    "in_flight": [register(2), InFlight(2, "fpb_first", 2, at=10.0)],
    "failed": [register(2), InFlight(2, "fpb_first", 3, at=10.0), Failed(2, "timeout", "x")],
    "done": [register(2), Done(2, "emp_1", CREATED)],
    "rejected": [register(2), Rejected(2, "email", "invalid", "email malformed")],
}


@pytest.mark.parametrize("prior", list(PRIOR_STATES))
def test_register_with_send_is_register_then_in_flight(tmp_path: Path, prior: str) -> None:
    """Register(..., attempt, sent_at) leaves exactly what Register + InFlight leave, and is
    ignored (and counted) exactly when that InFlight would be."""
    reg, sent = register_and_send(2, 1, at=20.0)
    outcomes = []
    ways: list[tuple[str, list[Transition]]] = [
        ("two", [reg, sent]),
        ("one", [dataclasses.replace(reg, attempt=1, sent_at=20.0)]),
    ]
    for name, sending in ways:
        with Journal.create(tmp_path / name, make_job(), wall_clock=FakeClock()) as journal:
            for t in PRIOR_STATES[prior]:
                journal.commit_batch([t])
            journal.commit_batch(sending)  # one batch: the grouped path
            outcomes.append((_rows_without_time(journal), journal.statistics().ignored))
    assert outcomes[0] == outcomes[1]


def test_grouped_commit_leaves_what_one_by_one_commits_leave(tmp_path: Path) -> None:
    """A batch committed with executemany groups ends exactly like the same transitions
    committed one at a time, in order: rows, states, attempts, keys, times, ignored count."""
    rng = random.Random(7)
    transitions: list[Transition] = []
    for _ in range(600):
        row = rng.randrange(2, 30)
        reg = register(row)
        choice = rng.randrange(7)
        if choice == 0:
            transitions.append(reg)
        elif choice == 1:
            transitions.append(dataclasses.replace(reg, attempt=rng.randrange(1, 4), sent_at=5.0))
        elif choice == 2:
            transitions.append(InFlight(row, f"fpb_{row}", rng.randrange(1, 4), at=rng.random()))
        elif choice == 3:
            transitions.append(Done(row, f"emp_{row}_{rng.randrange(9)}", CREATED))
        elif choice == 4:
            transitions.append(Rejected(row, "email", "invalid", "email malformed", "req_1"))
        elif choice == 5:
            transitions.append(Failed(row, "timeout", "no answer", None))
        else:
            transitions.append(Register(row, reg.row_key, None, None))
    ends = []
    for name, batches in [
        ("grouped", [transitions[i : i + 200] for i in range(0, len(transitions), 200)]),
        ("one_by_one", [[t] for t in transitions]),
    ]:
        with Journal.create(tmp_path / name, make_job(), wall_clock=FakeClock()) as journal:
            ignored = sum(journal.commit_batch(batch) for batch in batches)
            ends.append((_rows_without_time(journal), ignored, journal.statistics().ignored))
    assert ends[0] == ends[1]
    assert ends[0][1] > 0  # the sequence did exercise ignored transitions


def engine_like_stream(rng: random.Random, rows: int) -> list[Transition]:
    """Transitions as the engine makes them, eight rows in flight at a time, nothing ignored:
    register-and-send then done, rejected, or failed and re-sent; some rows rejected locally."""
    lives: list[list[Transition]] = []
    for row in range(2, rows + 2):
        reg = register(row)
        if rng.random() < 0.1:
            lives.append([Register(row, reg.row_key, None, None), Rejected(row, "f", "c", "r")])
            continue
        life: list[Transition] = [dataclasses.replace(reg, attempt=1, sent_at=float(row))]
        if rng.random() < 0.2:
            life += [Failed(row, "timeout", "no answer"), InFlight(row, "fpb_k", 2, at=9.0)]
        end = rng.random()
        if end < 0.8:
            life.append(Done(row, f"emp_{row}", CREATED))
        elif end < 0.9:
            life.append(Rejected(row, "email", "invalid", "email malformed", "req_9"))
        else:
            life.append(Failed(row, "timeout", "gave up"))
        lives.append(life)
    stream: list[Transition] = []
    active: list[list[Transition]] = []
    pending = iter(lives)
    while True:
        while len(active) < 8 and (started := next(pending, None)) is not None:
            active.append(started)
        if not active:
            return stream
        going = rng.choice(active)
        stream.append(going.pop(0))
        if not going:
            active.remove(going)


def test_grouped_commit_of_an_engine_stream_takes_the_grouped_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of what the engine records (nothing ignored) are applied by the grouped path
    alone, merged and multi-row statements included, and end like one-by-one commits."""
    stream = engine_like_stream(random.Random(11), 300)
    ends = []
    with Journal.create(tmp_path / "one_by_one", make_job(), wall_clock=FakeClock()) as journal:
        for t in stream:
            journal.commit_batch([t])
        ends.append(_rows_without_time(journal))

    def no_replay(*args: object) -> list[int]:
        raise AssertionError("the grouped path fell back on one-by-one")

    monkeypatch.setattr(statements, "apply_in_order", no_replay)
    with Journal.create(tmp_path / "grouped", make_job(), wall_clock=FakeClock()) as journal:
        for start in range(0, len(stream), 150):
            assert journal.commit_batch(stream[start : start + 150]) == 0
        ends.append(_rows_without_time(journal))
    assert ends[0] == ends[1]
    assert len(ends[0]) == 300


def test_a_batch_of_sent_and_done_records_ends_like_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's usual batch (each row once, a Done carrying its register-and-send) takes
    the one-group shortcut and ends like one-by-one commits: new rows, a row an earlier batch
    left in flight, a failed one re-sent; a row already settled is ignored (and named)."""

    def sent_done(row: int, status: RowStatus = CREATED) -> Done:
        reg = dataclasses.replace(register(row), attempt=2, sent_at=float(row))
        return Done(row, f"emp_{row}", status, f"req_{row}", registration=reg)

    earlier = [
        dataclasses.replace(register(3), attempt=1, sent_at=1.0),
        register(4),
        Failed(4, "timeout", "no answer"),
        sent_done(5),
    ]
    batch = [sent_done(row, RowStatus.REPLAYED if row % 2 else CREATED) for row in range(2, 40)]
    assert statements._sent_and_done_rows(batch, 0.0) is not None
    ends = []
    for name, batches in [("grouped", [batch]), ("one_by_one", [[t] for t in batch])]:
        with Journal.create(tmp_path / name, make_job(), wall_clock=FakeClock()) as journal:
            journal.commit_batch(earlier)
            ignored = sum(journal.commit_batch(b) for b in batches)
            ends.append((_rows_without_time(journal), ignored))
    assert ends[0] == ends[1]
    assert ends[0][1] == 1  # row 5 was settled already


def test_grouped_commit_names_the_ignored_rows(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    """When a grouped batch holds ignored transitions, the warning still names their rows and
    the valid transitions of the batch are applied."""
    journal.commit_batch([register(2), register(3), register(4), Done(3, "emp_3", CREATED)])
    with caplog.at_level("WARNING", logger="flexpay_batch.journal.store"):
        ignored = journal.commit_batch(
            [
                Done(2, "emp_2", CREATED),
                Done(3, "emp_x", RowStatus.REPLAYED),
                Done(4, "emp_4", RowStatus.ALREADY_EXISTED),
            ]
        )
    assert ignored == 1
    assert "rows 3" in caplog.text
    assert journal.row_statuses() == {
        2: RowStatus.CREATED,
        3: RowStatus.CREATED,
        4: RowStatus.ALREADY_EXISTED,
    }
    record = stored_row(journal, 3)
    assert record.server_id == "emp_3"


def test_failed_commit_applies_nothing(journal: Journal) -> None:
    """If one statement of a batch fails, the whole batch rolls back and the error surfaces."""
    journal.commit_batch([register(2)])
    bad = Register(3, None, None, None)  # type: ignore[arg-type]  # row_key is NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        journal.commit_batch([Done(2, "emp_2", CREATED), bad])
    record = stored_row(journal, 2)
    assert record.status is RowStatus.PENDING


# ── status from another connection or process ─────────────────────────────────────────────


def test_status_reads_beside_an_open_write_transaction(journal: Journal, run_dir: Path) -> None:
    """A reader sees the last commit while another connection holds a write transaction."""
    journal.commit_batch([register(2)])
    writer = sqlite3.connect(run_dir / JOURNAL_NAME, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE rows SET state = 'created'")
        snapshot = status_snapshot(run_dir)
        assert snapshot.counts[RowStatus.PENDING] == 1
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert status_snapshot(run_dir).counts[RowStatus.CREATED] == 1


def test_status_from_another_process(journal: Journal, run_dir: Path) -> None:
    """A second process reads the counts while this one holds the journal open."""
    journal.commit_batch([register(2)])
    code = (
        "import sys\n"
        "from flexpay_batch.journal.status import status_snapshot\n"
        "print(status_snapshot(sys.argv[1]).total)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == "1"


def test_status_reports_rate_times_and_no_secret(run_dir: Path) -> None:
    """Status gives succeeded rows per second over the last minute, times, and no secret."""
    wall = FakeClock(1_700_000_000.0)
    job = make_job()
    with Journal.create(run_dir, job, wall_clock=wall) as journal:
        journal.commit_batch([register(row) for row in range(2, 12)])
        wall.now += 100.0
        # three rows succeeded long ago, six within the last minute (two ways of succeeding)
        journal.commit_batch([Done(row, f"emp_{row}", CREATED) for row in range(2, 5)])
        wall.now += 100.0
        journal.commit_batch([Done(row, f"emp_{row}", CREATED) for row in range(5, 8)])
        journal.commit_batch([Done(row, f"emp_{row}", RowStatus.REPLAYED) for row in range(8, 11)])
    snapshot = status_snapshot(run_dir, now=wall.now + 30.0)
    assert snapshot.succeeded_per_second == pytest.approx(6 / 60)
    assert (snapshot.total, snapshot.remaining) == (10, 1)
    assert snapshot.started_at == job.created_at
    assert snapshot.updated_at == wall.now
    assert snapshot.job.job_id == job.job_id
    assert not hasattr(snapshot.job, "secret")
    assert job.secret.hex() not in repr(snapshot)


def test_status_without_journal_is_a_usage_error(tmp_path: Path) -> None:
    """Status of a directory without a journal says so."""
    with pytest.raises(UsageError, match="No flexpay-batch journal"):
        status_snapshot(tmp_path)


# ── asyncio writer ────────────────────────────────────────────────────────────────────────


async def test_async_writer_commits_by_size_off_the_event_loop(
    journal: Journal, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full batches are committed by a worker thread, never by the event loop's thread."""
    threads: list[threading.Thread] = []
    commit = Journal.commit_batch

    def spy(self: Journal, batch: list[Transition]) -> int:
        threads.append(threading.current_thread())
        return commit(self, batch)

    monkeypatch.setattr(Journal, "commit_batch", spy)
    async with AsyncJournalWriter(journal, max_batch=10, max_delay=3600.0) as writer:
        for row in range(2, 32):
            await writer.record(register(row))
        await writer.flush()
        assert committed_total(run_dir) == 30
    assert threads
    assert threading.main_thread() not in threads


async def test_async_writer_commits_by_size(journal: Journal, run_dir: Path) -> None:
    """With max_batch=3 nothing is committed before the third record, then all three at once."""
    async with AsyncJournalWriter(journal, max_batch=3, max_delay=3600.0) as writer:
        await writer.record(register(2))
        await writer.record(register(3))
        await anyio.wait_all_tasks_blocked()
        assert committed_total(run_dir) == 0
        await writer.record(register(4))
        with anyio.fail_after(5):
            while journal.statistics().commits == 0:
                await anyio.sleep(0.005)
        assert committed_total(run_dir) == 3
        assert journal.statistics().commits == 1


async def test_async_writer_commits_by_time(journal: Journal, run_dir: Path) -> None:
    """A lone transition is committed once max_delay has passed, without a flush."""
    async with AsyncJournalWriter(journal, max_batch=100, max_delay=0.01) as writer:
        await writer.record(register(2))
        with anyio.fail_after(5):
            while journal.statistics().commits == 0:
                await anyio.sleep(0.005)
    assert committed_total(run_dir) == 1


async def test_async_writer_times_each_batch_from_its_first_record(
    journal: Journal, run_dir: Path
) -> None:
    """A batch waits max_delay from its own first record: not before, and a new batch
    after a commit starts its own timer."""
    delay = 0.5
    async with AsyncJournalWriter(journal, max_batch=100, max_delay=delay) as writer:
        for row in (2, 3):
            started = anyio.current_time()
            await writer.record(register(row))
            await anyio.sleep(delay / 10)
            if anyio.current_time() - started < delay:  # not stalled past the deadline
                assert journal.statistics().commits == row - 2
            with anyio.fail_after(5):
                while journal.statistics().commits < row - 1:
                    await anyio.sleep(0.005)
            assert anyio.current_time() - started >= delay
            assert committed_total(run_dir) == row - 1


async def test_async_writer_commits_the_rest_on_exit(journal: Journal, run_dir: Path) -> None:
    """Leaving the writer commits whatever was still buffered."""
    async with AsyncJournalWriter(journal, max_batch=100, max_delay=3600.0) as writer:
        await writer.record(register(2))
        assert committed_total(run_dir) == 0
    assert committed_total(run_dir) == 1


async def test_async_writer_record_now_and_meta(journal: Journal, run_dir: Path) -> None:
    """record_now and set_meta return only once their data is committed."""
    async with AsyncJournalWriter(journal, max_batch=100, max_delay=3600.0) as writer:
        await writer.record(register(2))
        await writer.record_now(register(3))
        assert committed_total(run_dir) == 2
        await writer.record(register(4))
        await writer.set_meta("payroll_run_id", "pr_9")
        snapshot = status_snapshot(run_dir)
        assert (snapshot.total, snapshot.meta["payroll_run_id"]) == (3, "pr_9")


async def test_async_writer_commits_leftovers_when_the_body_fails(
    journal: Journal, run_dir: Path
) -> None:
    """What was recorded before an error in the body is still committed on the way out."""

    async def record_then_fail() -> None:
        async with AsyncJournalWriter(journal, max_batch=100, max_delay=3600.0) as writer:
            await writer.record(register(2))
            raise RuntimeError("boom")

    with pytest.raises(ExceptionGroup) as raised:
        await record_then_fail()
    assert raised.group_contains(RuntimeError)
    assert committed_total(run_dir) == 1


async def test_async_writer_applies_backpressure(journal: Journal, run_dir: Path) -> None:
    """A full buffer makes record wait for a commit instead of growing without bound."""
    async with AsyncJournalWriter(journal, max_batch=5, max_delay=3600.0, max_buffer=5) as w:
        for row in range(2, 52):
            await w.record(register(row))
            assert len(w._buffer) <= 5
    assert committed_total(run_dir) == 50


# ── privacy ───────────────────────────────────────────────────────────────────────────────

PEOPLE = [
    {
        "external_id": "E-77120",
        "first_name": "Zofia",
        "last_name": "Wiśniewska",
        "email": "zofia.wisniewska@example.org",
        "tax_id": "532-84-1177",
        "account_number": "004417729955",
        "amount": Decimal("4812.37"),
    },
    {
        "external_id": "E-77121",
        "first_name": "Thandiwe",
        "last_name": "Okonkwo-Baptiste",
        "email": "t.okonkwo@example.net",
        "tax_id": "611-29-4048",
        "account_number": "990266183401",
        "amount": Decimal("2950.05"),
    },
    {
        "external_id": "E-77122",
        "first_name": "Émile",
        "last_name": "Durand-Lefebvre",
        "email": "emile.durand@example.com",
        "tax_id": "702-63-5219",
        "account_number": "310058847261",
        "amount": Decimal("7333.90"),
    },
]


def personal_values() -> list[str]:
    """Every personal value of PEOPLE as text (amounts as the API would see them)."""
    return [str(value) for person in PEOPLE for value in person.values()]


def journal_people(journal: Journal) -> None:
    """Journal PEOPLE the way the engine does: keys and hashes in, ids and reasons out."""
    secret = journal.job.secret
    batch: list[Transition] = []
    for row, person in enumerate(PEOPLE, start=2):
        identity = str(person["external_id"])
        body_hash = body_sha256(person)
        key = idempotency_key(secret, "onboarding", identity, body_hash)
        batch.append(Register(row, keyed_hash(secret, identity), body_hash, key))
        batch.append(InFlight(row, key, 1, at=1_700_000_000.0))
    batch.append(Done(2, "emp_8812", CREATED, "req_1"))
    batch.append(Rejected(3, "tax_id", "invalid_format", "tax_id must have 9 digits", "req_2"))
    batch.append(Failed(4, "timeout", "no answer after 3 attempts"))
    journal.commit_batch(batch)
    journal.set_meta("payroll_run_id", "pr_551")


def test_journal_bytes_hold_no_personal_data(journal: Journal, run_dir: Path) -> None:
    """Neither the database nor its -wal and -shm files contain any personal value."""
    journal_people(journal)
    db = run_dir / JOURNAL_NAME
    assert {p.name for p in journal_files(db)} >= {JOURNAL_NAME, f"{JOURNAL_NAME}-wal"}
    assert find_values_in_files(db, personal_values()) == []
    journal.close()  # checkpoints the WAL into the database file
    assert find_values_in_files(db, personal_values()) == []


def test_personal_value_scan_finds_a_planted_value(journal: Journal, run_dir: Path) -> None:
    """The scan is not vacuous: a reason that quotes a value is caught."""
    planted = Rejected(2, "email", "invalid", "bad email zofia.wisniewska@example.org")
    journal.commit_batch([register(2), planted])
    found = find_values_in_files(run_dir / JOURNAL_NAME, personal_values())
    assert ("journal.sqlite-wal", "zofia.wisniewska@example.org") in found


@pytest.mark.parametrize(
    "module",
    ["connection", "files", "jobinfo", "run_journal", "schema", "statements", "status",
     "store", "transitions", "writer"],
)  # fmt: skip
def test_module_exports_exist(module: str) -> None:
    """Every name in each journal module's __all__ is defined."""
    imported = importlib.import_module(f"flexpay_batch.journal.{module}")
    assert all(hasattr(imported, name) for name in imported.__all__)


def test_done_needs_a_succeeded_status() -> None:
    """A Done transition only carries created, replayed or already_existed."""
    with pytest.raises(ValueError, match="succeeded status"):
        Done(2, "emp_1", RowStatus.FAILED)


def test_status_reads_a_journal_sqlite_cannot_open_in_place(
    journal: Journal, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only file system (injected: CI runs as root, so chmod would not stop it) the
    read-only open fails; status still reads the committed rows, and writes nothing."""
    journal.commit_batch([register(2)])
    real_connect = sqlite3.connect

    def read_only_fs(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if kwargs.get("uri"):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr("flexpay_batch.journal.connection.sqlite3.connect", read_only_fs)
    before = sorted(p.name for p in run_dir.iterdir())
    snapshot = status_snapshot(run_dir)
    assert snapshot.counts[RowStatus.PENDING] == 1
    assert sorted(p.name for p in run_dir.iterdir()) == before
