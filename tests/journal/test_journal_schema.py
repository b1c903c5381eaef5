"""Tests for the journal schema: version 1 journals (built here by raw SQL, as the previous
release wrote them) are read by status as they are and upgraded in place by a writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flexpay_batch.core.states import RowStatus
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.journal.schema import SCHEMA_VERSION
from flexpay_batch.journal.status import status_snapshot
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Register

# The version 1 layout, as the previous release created it.
V1_SCHEMA = """
CREATE TABLE job (
    id INTEGER PRIMARY KEY CHECK (id = 1), job_id TEXT NOT NULL, kind TEXT NOT NULL,
    input_path TEXT NOT NULL, input_sha256 TEXT NOT NULL, base_url TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL, config_json TEXT NOT NULL, secret BLOB NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, schema_version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE rows (
    row_no INTEGER PRIMARY KEY, row_key TEXT NOT NULL, body_hash TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'rejected', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, idempotency_key TEXT, first_sent_at REAL,
    server_id TEXT, note TEXT, field TEXT, code TEXT, reason TEXT, updated_at REAL NOT NULL);
CREATE INDEX rows_state_updated ON rows (state, updated_at);
INSERT INTO job VALUES (1, '20260101T000000Z-abcdef', 'onboarding', 'e.csv', 'aaaa',
    'https://api.flexpay.dev/v1/', 'sha256:0', '{}', x'0102', 1000.0, 1000.0, 1);
INSERT INTO meta VALUES ('payroll_run_id', 'pr_1');
INSERT INTO rows (row_no, row_key, state, attempts, server_id, note, updated_at) VALUES
    (2, 'k2', 'done', 1, 'emp_2', 'created', 1000.0),
    (3, 'k3', 'done', 1, 'emp_3', 'replayed', 1000.0),
    (4, 'k4', 'done', 0, 'emp_4', 'already_existed', 1000.0),
    (5, 'k5', 'done', 1, 'emp_5', NULL, 1000.0),
    (6, 'k6', 'rejected', 1, NULL, 'req_6', 1000.0),
    (7, 'k7', 'failed', 3, NULL, 'req_7', 1000.0),
    (8, 'k8', 'in_flight', 2, NULL, NULL, 1000.0),
    (9, 'k9', 'pending', 0, NULL, NULL, 1000.0);
"""

V2_COUNTS = {
    RowStatus.PENDING: 1,
    RowStatus.IN_FLIGHT: 1,
    RowStatus.CREATED: 2,
    RowStatus.REPLAYED: 1,
    RowStatus.ALREADY_EXISTED: 1,
    RowStatus.REJECTED: 1,
    RowStatus.FAILED: 1,
}


@pytest.fixture
def v1_journal(tmp_path: Path) -> Path:
    """A version 1 journal in WAL mode, as the previous release left it."""
    db = tmp_path / JOURNAL_NAME
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_SCHEMA)
    conn.close()
    return db


def test_status_reads_a_v1_journal_without_changing_it(v1_journal: Path) -> None:
    """Status reports a v1 journal in RowStatus words and writes nothing (no upgrade)."""
    before = v1_journal.read_bytes()
    snapshot = status_snapshot(v1_journal, now=1030.0)
    assert snapshot.counts == V2_COUNTS
    assert snapshot.job.schema_version == 1
    assert snapshot.succeeded_per_second == pytest.approx(4 / 30)
    assert v1_journal.read_bytes() == before


def test_writer_upgrades_a_v1_journal_in_place(v1_journal: Path) -> None:
    """Opening for writing moves 'done' + outcome to the outcome word and the request id of
    rejected and failed rows to request_id, keeps everything else, and goes on working."""
    with Journal.open(v1_journal) as journal:
        assert journal.job.schema_version == SCHEMA_VERSION
        assert journal.counts() == V2_COUNTS
        records = {r.row: r for r in journal.iter_rows()}
        assert records[4].status is RowStatus.ALREADY_EXISTED
        assert records[5].status is RowStatus.CREATED  # v1 done without an outcome
        assert (records[2].request_id, records[2].server_id) == (None, "emp_2")
        assert (records[6].request_id, records[7].request_id) == ("req_6", "req_7")
        assert (records[7].attempts, records[8].status) == (3, RowStatus.IN_FLIGHT)
        assert journal.meta() == {"payroll_run_id": "pr_1"}
        assert journal.job.secret == b"\x01\x02"
        assert journal.settled_rows() == {2, 3, 4, 5, 6}
        journal.commit_batch([Done(9, "emp_9", RowStatus.CREATED, "req_9")])
        journal.commit_batch([Register(10, "k10", None, None)])
        assert journal.integrity_check() == ["ok"]
    assert status_snapshot(v1_journal).job.schema_version == SCHEMA_VERSION


def test_a_failed_upgrade_leaves_the_v1_journal_as_it_was(v1_journal: Path) -> None:
    """The upgrade is one transaction: if it fails, the journal is still a readable v1."""
    conn = sqlite3.connect(v1_journal, isolation_level=None)
    conn.execute("CREATE TABLE rows_v2 (x)")  # makes the upgrade's CREATE TABLE fail
    conn.close()
    with pytest.raises(sqlite3.OperationalError, match="rows_v2"):
        Journal.open(v1_journal)
    snapshot = status_snapshot(v1_journal)
    assert (snapshot.job.schema_version, snapshot.counts) == (1, V2_COUNTS)
