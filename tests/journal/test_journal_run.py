"""Tests for open_run_journal: restart under the writer lock, and never replacing a journal
that held a job (a lost -wal file), while a crashed create is still cleaned up."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexpay_batch.core.errors import ResumeRefused
from flexpay_batch.core.states import RowStatus
from flexpay_batch.journal.files import JOURNAL_NAME, in_wal_mode
from flexpay_batch.journal.run_journal import open_run_journal
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Register
from tests.journal.helpers import make_job


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a child Python with this worktree first on its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory path that does not exist yet."""
    return tmp_path / "run"


@pytest.fixture
def other_writer(run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the run's journal open for writing until stdin closes."""
    with open_run_journal(run_dir, make_job()) as journal:
        journal.commit_batch([Register(2, "k2", None, None)])
    proc = python(
        """
        import sys
        from flexpay_batch.journal.store import Journal
        with Journal.open(sys.argv[1]):
            print("holding", flush=True)
            sys.stdin.read()
        """,
        str(run_dir),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "holding\n", proc.communicate()[1]
    yield proc
    proc.communicate(timeout=30)


def test_restart_is_refused_while_another_process_writes(
    run_dir: Path, other_writer: subprocess.Popen[str]
) -> None:
    """--restart takes the writer lock before touching anything: with a live writer it refuses
    and the live journal stays where it is, untouched."""
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(ResumeRefused, match="Another flexpay-batch process"):
        open_run_journal(run_dir, make_job(), restart=True)
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert not list(run_dir.glob("previous-*"))


def test_restart_keeps_the_old_job_and_the_lock_file(run_dir: Path) -> None:
    """--restart moves every file of the old job under previous-*/ and begins a new job,
    while the held lock file stays in place (so no other process can slip in)."""
    first = make_job()
    with open_run_journal(run_dir, first) as journal:
        journal.commit_batch([Register(2, "k2", None, None)])
    (run_dir / "results.csv").write_text("row\n")
    second = make_job()
    with open_run_journal(run_dir, second, restart=True) as journal:
        assert journal.job.job_id == second.job_id
        with pytest.raises(ResumeRefused, match="Another flexpay-batch process"):
            Journal.open(run_dir)  # the lock file in run_dir is the one held
    (archive,) = run_dir.glob("previous-*")
    assert {"results.csv", JOURNAL_NAME} <= {p.name for p in archive.iterdir()}
    assert not (archive / f"{JOURNAL_NAME}.lock").exists()
    with Journal.open(archive / JOURNAL_NAME) as old:
        assert old.job.job_id == first.job_id


KILLED_WRITER = """
    import os, signal, sys
    from flexpay_batch.core.states import RowStatus
    from flexpay_batch.journal.jobinfo import JobInfo
    from flexpay_batch.journal.store import Journal
    from flexpay_batch.journal.transitions import Done, Register
    job = JobInfo.new(kind="onboarding", input_path="employees.csv", input_sha256="a" * 64,
                      base_url="https://api.flexpay.dev/v1/",
                      token_fingerprint="sha256:0123456789ab", config={"job": {}})
    journal = Journal.create(sys.argv[1], job)
    journal.commit_batch([Register(2, "k2", None, None), Done(2, "emp_2", RowStatus.CREATED)])
    journal.set_meta("payroll_run_id", "pr_1")
    print(job.job_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close: nothing is checkpointed
"""


def test_journal_with_rows_and_no_wal_keeps_its_job(run_dir: Path) -> None:
    """A journal killed with its rows in the -wal file, which is then deleted, is resumed
    with its own job and secret (same idempotency keys), never replaced by a new job."""
    proc = python(KILLED_WRITER, str(run_dir / JOURNAL_NAME))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -9, err
    job_id = out.strip()
    wal = run_dir / f"{JOURNAL_NAME}-wal"
    assert wal.stat().st_size > 0
    wal.unlink()
    with open_run_journal(run_dir, make_job()) as journal:
        assert journal.job.job_id == job_id


def test_journal_whose_job_is_only_in_a_lost_wal_is_refused(run_dir: Path) -> None:
    """A journal in WAL mode whose job and rows sat in a -wal file now deleted (as one
    written before this release could be) is refused with what to do, and kept."""
    run_dir.mkdir(mode=0o700)
    db = run_dir / JOURNAL_NAME
    proc = python(
        """
        import os, signal, sqlite3, sys
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, schema_version INTEGER)")
        conn.execute("CREATE TABLE rows (row_no INTEGER PRIMARY KEY, state TEXT)")
        conn.execute("INSERT INTO job VALUES (1, 1)")
        conn.execute("INSERT INTO rows VALUES (2, 'done')")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(db),
    )
    assert proc.communicate(timeout=60)[0] == ""
    Path(f"{db}-wal").unlink()
    before = db.read_bytes()
    with pytest.raises(ResumeRefused, match="-wal") as refused:
        open_run_journal(run_dir, make_job())
    assert "--restart" in refused.value.hint
    assert db.read_bytes() == before


def test_journal_with_a_lost_job_record_is_refused(run_dir: Path) -> None:
    """Tables but no job row: refused with a sentence, the file left as it is."""
    with open_run_journal(run_dir, make_job()) as journal:
        journal.commit_batch([Register(2, "k2", None, None)])
        journal._db().execute("DELETE FROM job")
    with pytest.raises(ResumeRefused, match="job record cannot be read"):
        open_run_journal(run_dir, make_job())
    assert (run_dir / JOURNAL_NAME).stat().st_size > 0


@pytest.mark.parametrize("leftover", ["empty file", "rolled-back create"])
def test_a_crash_inside_create_is_cleaned_up(run_dir: Path, leftover: str) -> None:
    """A database that never held a job (no tables, not WAL) is discarded and a job begun."""
    run_dir.mkdir(mode=0o700)
    db = run_dir / JOURNAL_NAME
    db.touch(mode=0o600)
    if leftover == "rolled-back create":
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE job (id INTEGER)")
        conn.execute("ROLLBACK")
        conn.close()
    wanted = make_job()
    with open_run_journal(run_dir, wanted) as journal:
        assert journal.job.job_id == wanted.job_id
        journal.commit_batch([Register(2, "k2", None, None), Done(2, "e", RowStatus.CREATED)])
        assert journal.counts()[RowStatus.CREATED] == 1


def test_new_journal_holds_its_job_in_the_database_file(run_dir: Path) -> None:
    """Create commits the job before switching to WAL, so while the journal is open (its
    later commits still in the -wal file) the database file itself holds the job."""
    wanted = make_job()
    with open_run_journal(run_dir, wanted) as journal:
        journal.commit_batch([Register(2, "k2", None, None)])
        db = journal.path
        assert in_wal_mode(db)
        assert Path(f"{db}-wal").stat().st_size > 0
        assert wanted.job_id.encode() in db.read_bytes()
