"""Crash test for the journal store: SIGKILL a writer many times; nothing committed is lost.

The child (this file run as a script) plays a resuming engine: it opens the journal, reads
where every row stands, and drives rows through register → in_flight → (failed → in_flight)
→ done | rejected in group commits, printing each committed batch *after* the commit returned.
The parent kills it at seeded random moments, and after every kill checks that the database is
sound, every row is in exactly one state, no row moved backwards, and every batch the child
reported committed is still there.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flexpay_batch.core.states import RowStatus
from flexpay_batch.journal.jobinfo import JobInfo
from flexpay_batch.journal.run_journal import open_run_journal
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Failed, InFlight, Register, Rejected, Transition

ROWS = 1000
ACTIVE_ROWS = 64  # rows in flight at once, as with concurrent workers
MAX_BATCH = 25  # small batches: many commits, so many kills land inside one
KILLS = 12
SEED = 20260313
# A kill lands a random 0-5 ms after the child reported its k-th commit, k in 0..8: random
# moments that still fall inside the run however fast or slow the disk's fsync is today.
KILL_AFTER_COMMITS = (0, 8)
KILL_JITTER = (0.0, 0.005)
# Progress order of a row: (attempts, rank); a row's progress never decreases.
_RANK = {
    RowStatus.PENDING: 0,
    RowStatus.IN_FLIGHT: 1,
    RowStatus.FAILED: 2,
    RowStatus.CREATED: 3,
    RowStatus.REJECTED: 3,
}
Progress = tuple[int, int]


def plan(row: int) -> str:
    """The fate of a row: fail once then succeed, be rejected, or succeed at once."""
    return ("fail_once", "reject", "done", "done", "done")[row % 5]


def next_step(row: int, state: RowStatus | None, attempts: int) -> Transition | None:
    """The transition an engine would record next for a row in ``state``; None if settled."""
    key = f"fpb_{row:048x}"
    if state is None:
        return Register(row, f"{row:032x}", "0" * 64, key)
    if state in (RowStatus.PENDING, RowStatus.FAILED):
        return InFlight(row, key, attempts + 1, at=1_700_000_000.0 + row)
    if state is RowStatus.IN_FLIGHT:
        if plan(row) == "fail_once" and attempts == 1:
            return Failed(row, "timeout", "no answer")
        if plan(row) == "reject":
            return Rejected(row, "email", "invalid", "email malformed")
        return Done(row, f"emp_{row}", RowStatus.CREATED)
    return None


def apply_step(state: RowStatus | None, attempts: int, step: Transition) -> tuple[RowStatus, int]:
    """The state and attempts a row has after ``step``."""
    match step:
        case Register():
            return RowStatus.PENDING, 0
        case InFlight():
            return RowStatus.IN_FLIGHT, max(attempts, step.attempt)
        case Failed():
            return RowStatus.FAILED, attempts
        case Rejected():
            return RowStatus.REJECTED, attempts
        case Done():
            return RowStatus.CREATED, attempts


def crash_job(db: Path) -> JobInfo:
    """The job every child run opens (only kind, input and URL matter for a resume)."""
    return JobInfo.new(
        kind="onboarding",
        input_path=str(db.with_suffix(".csv")),
        input_sha256="c" * 64,
        base_url="https://127.0.0.1/v1/",
        token_fingerprint="sha256:000000000000",
        config={"rows": ROWS},
    )


class ChildEngine:
    """The child's loop: advance ACTIVE_ROWS rows at a time, report each commit on stdout."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.states: dict[int, tuple[RowStatus, int]] = {
            r.row: (r.status, r.attempts) for r in journal.iter_rows()
        }
        self.touched: dict[int, tuple[RowStatus, int]] = {}
        self.batch: list[Transition] = []

    def run(self) -> None:
        todo = iter(range(2, ROWS + 2))
        active: deque[int] = deque()
        self._refill(active, todo)
        while active:
            row = active.popleft()
            state, attempts = self.states.get(row, (None, 0))
            step = next_step(row, state, attempts)
            if step is None:
                self._refill(active, todo)
                continue
            self.states[row] = self.touched[row] = apply_step(state, attempts, step)
            self.batch.append(step)
            if len(self.batch) >= MAX_BATCH:
                self._commit()
            active.append(row)
        self._commit()

    def _refill(self, active: deque[int], todo: Iterator[int]) -> None:
        while len(active) < ACTIVE_ROWS:
            row = next(todo, None)
            if row is None:
                return
            active.append(row)

    def _commit(self) -> None:
        """Group-commit the batch (one fsynced transaction), then report it on stdout."""
        if self.batch:
            self.journal.commit_batch(self.batch)
            self.batch = []
        self._report()

    def _report(self) -> None:
        if self.touched:
            items = " ".join(f"{r}:{a}:{s.value}" for r, (s, a) in self.touched.items())
            print(f"C {items}", flush=True)
            self.touched.clear()


def child_main(db: Path) -> None:
    """Entry point of the child process."""
    journal = open_run_journal(db, crash_job(db))
    print("ready", flush=True)
    ChildEngine(journal).run()
    journal.close()
    print("finished", flush=True)


if __name__ == "__main__":
    child_main(Path(sys.argv[1]))
    sys.exit(0)

# Imported after the child's entry point on purpose: the child is started dozens of times and
# must not pay pytest's import (0.2 s each).
import pytest  # noqa: E402

# ── the parent ────────────────────────────────────────────────────────────────────────────


@dataclass
class ChildRun:
    """What one child run printed before it ended or was killed."""

    returncode: int
    lines: list[str]
    stderr: str

    @property
    def finished(self) -> bool:
        return "finished" in self.lines

    def committed(self) -> dict[int, Progress]:
        """Row → progress of every batch the child reported committed."""
        result: dict[int, Progress] = {}
        for line in self.lines:
            if line.startswith("C "):
                for item in line[2:].split():
                    row, attempts, state = item.split(":")
                    result[int(row)] = (int(attempts), _RANK[RowStatus(state)])
        return result


@dataclass(frozen=True)
class KillPlan:
    """When to SIGKILL a child: ``delay`` seconds after it reported ``commits`` commits."""

    commits: int
    delay: float

    @classmethod
    def draw(cls, rng: random.Random) -> KillPlan:
        return cls(rng.randint(*KILL_AFTER_COMMITS), rng.uniform(*KILL_JITTER))


def run_child(db: Path, kill: KillPlan | None) -> ChildRun:
    """Run the child and SIGKILL it as ``kill`` says (None: let it run to the end)."""
    # stderr goes to a file: ``communicate`` would read stdout too, racing the pump thread.
    with tempfile.TemporaryFile(mode="w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, __file__, str(db)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        lines: list[str] = []
        reached = threading.Event()
        wanted = 0 if kill is None else kill.commits

        def pump() -> None:
            assert proc.stdout is not None
            commits = 0
            for line in proc.stdout:
                if line.endswith("\n"):  # a line cut by the kill was never fully reported
                    lines.append(line[:-1])
                    commits += line.startswith("C ")
                    if commits >= wanted or line == "finished\n":
                        reached.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        if kill is not None:
            reached.wait(timeout=30)
            time.sleep(kill.delay)
            proc.kill()
        proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
        errors.seek(0)
        return ChildRun(proc.returncode, lines, errors.read())


def journal_progress(db: Path) -> dict[int, Progress]:
    """Check the journal's soundness and return row → progress as committed."""
    with Journal.open(db) as journal:
        assert journal.integrity_check() == ["ok"]
        records = list(journal.iter_rows())
        counts = journal.counts()
    assert sum(counts.values()) == len(records) == len({r.row for r in records})
    assert all(2 <= r.row < ROWS + 2 for r in records)
    return {r.row: (r.attempts, _RANK[r.status]) for r in records}


def assert_no_regression(before: dict[int, Progress], after: dict[int, Progress]) -> None:
    """Every row known before is still there, at the same or a later stage."""
    lost = [row for row in before if row not in after]
    back = [row for row, progress in before.items() if row in after and after[row] < progress]
    assert not lost, f"rows lost: {lost[:10]}"
    assert not back, f"rows moved backwards: {back[:10]}"


@pytest.mark.slow
def test_sigkill_during_group_commits_loses_nothing(tmp_path: Path) -> None:
    """After 12 SIGKILLs the journal is sound, no reported commit is lost, all rows finish."""
    db = tmp_path / "run" / "journal.sqlite"
    rng = random.Random(SEED)
    known: dict[int, Progress] = {}
    interrupted = 0
    started = time.monotonic()
    for _ in range(KILLS):
        run = run_child(db, KillPlan.draw(rng))
        assert run.returncode in (0, -9), run.stderr
        interrupted += not run.finished
        reported = {**known, **run.committed()}
        now = journal_progress(db)
        assert_no_regression(reported, now)
        known = now
    final = run_child(db, kill=None)
    assert final.returncode == 0, final.stderr
    assert_no_regression(known, journal_progress(db))
    assert_planned_outcomes(db)
    assert interrupted >= KILLS - 2, f"only {interrupted} kills interrupted the child mid-run"
    assert time.monotonic() - started < 60


def assert_planned_outcomes(db: Path) -> None:
    """Every row ended once, done or rejected as planned, after enough attempts."""
    with Journal.open(db) as journal:
        records = {r.row: r for r in journal.iter_rows()}
    assert sorted(records) == list(range(2, ROWS + 2))
    for row, record in records.items():
        expected = RowStatus.REJECTED if plan(row) == "reject" else RowStatus.CREATED
        assert record.status is expected, row
        assert record.attempts >= (2 if plan(row) == "fail_once" else 1), row
        assert record.row_key == f"{row:032x}"


def test_child_plan_is_well_formed() -> None:
    """The child's steps walk every plan to a settled state in a few transitions."""
    for row in range(2, 12):
        state: RowStatus | None = None
        attempts = 0
        for _ in range(6):
            step = next_step(row, state, attempts)
            if step is None:
                break
            state, attempts = apply_step(state, attempts, step)
        assert state in (RowStatus.CREATED, RowStatus.REJECTED)


def test_journal_file_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    """The journal the child writes is a WAL database (what makes kill -9 safe)."""
    db = tmp_path / "run" / "journal.sqlite"
    Journal.create(db, crash_job(db)).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
