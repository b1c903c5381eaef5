"""Exactly once under crashes: the real CLI, SIGKILLed and SIGINTed at random, then resumed.

Each test drives ``flexpay-batch`` as a subprocess against a ``SimulatorThread`` that commits
then drops about one write reply in ten, with the contract's limits scaled to seconds. The
engine is killed at seeded random moments (most of them a random number of journaled rows into
the run plus a few milliseconds, so they land between and inside group commits; some blind,
early, so they land in start-up, the pre-flight reads or the journal's creation) and resumed,
alternately with ``flexpay-batch resume RUN_DIR`` and by re-running the same command with the
same ``--run-dir``, until a run exits on its own. Then the simulator's effect ledger must show
every valid row applied exactly once, the results file must list every row once with the
server's id, and the journal must be sound (Kafka's transactions test, Jepsen's set checker
and SQLite's atomic commit, in reliability-notes.md).
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import signal
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.core.states import SUCCEEDED
from flexpay_batch.journal.files import find_values_in_files
from flexpay_batch.journal.writer import DEFAULT_MAX_DELAY
from flexpay_batch.sim import FaultConfig
from tests.conftest import MakeSimulatorThread
from tests.forkcli import ForkedProcess
from tests.harness import (
    PERIOD_FLAGS,
    api_get,
    cli_env,
    fast_limits,
    limit_flags,
    list_all,
    read_csv,
    run_cli,
    start_cli,
    succeeded,
    write_onboarding,
)

pytestmark = pytest.mark.slow

SEED = 20260313
ONBOARDING_ROWS = 160
PAYROLL_EMPLOYEES = 60
MIN_KILLS = 12
PAYROLL_MIN_KILLS = 6
SIGINT_ROWS = 120
# Scaled limits: a few hundred writes take a few seconds, so the run is mostly start-ups. The
# rate is set so a group commit (every DEFAULT_MAX_DELAY seconds) holds about 8 rows: the
# driver waits for journaled progress before most kills, so a run must span many commits for
# its kills to spread over the run rather than all miss it.
ROWS_PER_COMMIT = 8
LIMITS = fast_limits(writes_per_second=ROWS_PER_COMMIT / DEFAULT_MAX_DELAY, write_burst=10)
FAULTS = FaultConfig(seed=SEED, commit_drop_rate=0.1)
# Safety bounds only (nothing asserts on time): one CLI invocation, one whole driven run.
INVOCATION_TIMEOUT = 60.0
RUN_DEADLINE = 150.0
MAX_INVOCATIONS = 150
# A blind kill (this share of invocations) lands this many seconds after the start. The CLI is
# forked from an interpreter that has already imported it (tests/forkcli.py), so these land in
# settings, the pre-flight reads, the journal's creation and the first batch, not in imports.
BLIND_SHARE = 0.2
BLIND_DELAY = (0.0, 0.25)
# A kill that waits for journaled progress lands this much later, inside the next batch.
JITTER = (0.0, 0.04)
# ── input files ──────────────────────────────────────────────────────────────────────────


def write_payroll(path: Path, external_ids: Sequence[str]) -> Decimal:
    """Write one payroll line per employee to ``path``; return the file's total."""
    rng = random.Random(f"{SEED}-payroll")
    total = Decimal(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["employee_external_id", "hours", "gross_amount", "currency", "memo"])
        for ext in external_ids:
            amount = Decimal(rng.randint(50_000, 400_000)) / 100
            total += amount
            writer.writerow([ext, "40.00", f"{amount:.2f}", "USD", "Regular hours"])
    return total


# ── reading the journal and the simulator from outside ──────────────────────────────────────


def journal_path(run_dir: Path) -> Path:
    """The journal database of ``run_dir``."""
    return run_dir / "journal.sqlite"


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(db))}?mode=ro", uri=True, timeout=5.0)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def settled_count(run_dir: Path) -> int:
    """Rows the journal has committed as settled (succeeded or rejected); 0 while there is
    no journal yet."""
    db = journal_path(run_dir)
    if not db.exists():
        return 0
    try:
        found = _query(
            db, "SELECT count(*) FROM rows WHERE state NOT IN ('pending', 'in_flight', 'failed')"
        )
    except sqlite3.Error:
        return 0  # being created, or half created by a kill
    return int(found[0][0])


def has_job(run_dir: Path) -> bool:
    """True when the journal exists and its job row is committed (``resume`` can use it)."""
    db = journal_path(run_dir)
    if not db.exists():
        return False
    try:
        return bool(_query(db, "SELECT count(*) FROM job")[0][0])
    except sqlite3.Error:
        return False


# ── driving the CLI through kills ──────────────────────────────────────────────────────────


@dataclass
class DrivenRun:
    """What happened while a run was killed and resumed until it finished."""

    kills: int = 0
    blind_kills: int = 0
    invocations: int = 0
    resumed_with: dict[str, int] = field(default_factory=lambda: {"resume": 0, "same": 0})
    final: subprocess.CompletedProcess[str] | None = None
    settled_at_kills: list[int] = field(default_factory=list)


def _wait_for(proc: ForkedProcess, run_dir: Path, target: int, deadline: float) -> None:
    """Return once ``target`` rows are settled in the journal, the process ended or time ran out."""
    while proc.poll() is None and time.monotonic() < deadline:
        if settled_count(run_dir) >= target:
            return
        time.sleep(0.005)


def drive_with_kills(
    first_args: Sequence[str],
    run_dir: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    rows: int,
    min_kills: int,
    rng: random.Random,
    stop_signal: signal.Signals = signal.SIGKILL,
) -> DrivenRun:
    """Start, stop (``stop_signal``) and resume the CLI until one invocation ends by itself.

    Until ``min_kills`` kills have landed every invocation is stopped: a ``BLIND_SHARE`` of
    them (SIGKILL only) a random ``BLIND_DELAY`` after the start, the others once a random
    number of further rows is journaled (chosen so the kills spread over the whole run) plus
    a random ``JITTER``.
    After that, half the invocations are stopped at a random point of what is left.
    """
    driven = DrivenRun()
    deadline = time.monotonic() + RUN_DEADLINE
    resume_args = ["resume", str(run_dir)]
    while driven.invocations < MAX_INVOCATIONS:
        assert time.monotonic() < deadline, f"run not finished in time: {driven}"
        use_resume = has_job(run_dir) and driven.invocations % 2 == 1
        args = resume_args if use_resume else list(first_args)
        if driven.invocations:
            driven.resumed_with["resume" if use_resume else "same"] += 1
        before = settled_count(run_dir)
        left = rows - before
        proc = start_cli(args, env=env, cwd=cwd)
        driven.invocations += 1
        stop = driven.kills < min_kills or rng.random() < 0.5
        # Blind stops are SIGKILLs only: a SIGINT before the interpreter has even imported
        # the CLI is Python's (a KeyboardInterrupt traceback), not the engine's graceful stop.
        blind = rng.random() < BLIND_SHARE and stop_signal is signal.SIGKILL
        if stop and blind and driven.kills < min_kills:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(rng.uniform(*BLIND_DELAY))
        elif stop:
            wanted = max(0, min_kills - driven.kills)
            most = max(1, left // (wanted + 1)) if wanted else max(1, left)
            _wait_for(proc, run_dir, before + rng.randint(1, most), deadline)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(rng.uniform(*JITTER))
        if stop and proc.poll() is None:
            proc.send_signal(stop_signal)
            settled = settled_count(run_dir)
            stdout, stderr = proc.communicate(timeout=INVOCATION_TIMEOUT)
            if stop_signal is signal.SIGKILL:
                # 0: the run ended on its own between the poll above and the signal.
                assert proc.returncode in (-signal.SIGKILL, 0), proc.returncode
            elif proc.returncode == 0 and settled == rows:
                pass  # the Ctrl-C came once the outcome was decided: it is ignored, run done
            else:
                assert proc.returncode == 130, (proc.returncode, stderr)
                assert "resum" in stderr, stderr
                assert "Traceback" not in stderr, stderr
            if proc.returncode != 0:
                driven.kills += 1
                driven.blind_kills += blind
                driven.settled_at_kills.append(settled)
                continue
        else:
            stdout, stderr = proc.communicate(timeout=INVOCATION_TIMEOUT)
        driven.final = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
        assert proc.returncode == 0, (
            f"invocation {driven.invocations} exited {proc.returncode}:\n{stderr}"
        )
        return driven
    raise AssertionError(f"no invocation finished: {driven}")


def assert_journal_sound(run_dir: Path, rows: int) -> list[tuple[Any, ...]]:
    """The journal passes ``integrity_check`` and holds every row once, done; return them."""
    db = journal_path(run_dir)
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]
    records = _query(db, "SELECT row_no, state, server_id FROM rows ORDER BY row_no")
    assert [r[0] for r in records] == list(range(2, rows + 2))
    assert {r[1] for r in records} <= {s.value for s in SUCCEEDED}
    return records


# ── the tests ──────────────────────────────────────────────────────────────────────────────


def test_onboarding_killed_at_random_applies_every_row_exactly_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """SIGKILLed ≥ 12 times at seeded random moments and resumed, every employee is created once."""
    sim = make_simulator_thread(limits=LIMITS, faults=FAULTS)
    source = tmp_path / "people.csv"
    people = write_onboarding(source, ONBOARDING_ROWS)
    run_dir = tmp_path / "run"
    args = ["onboard", str(source), "--run-dir", str(run_dir), *limit_flags(LIMITS)]

    driven = drive_with_kills(
        args,
        run_dir,
        env=cli_env(sim),
        cwd=tmp_path,
        rows=ONBOARDING_ROWS,
        min_kills=MIN_KILLS,
        rng=random.Random(SEED),
    )

    assert driven.kills >= MIN_KILLS
    mid_run = [n for n in driven.settled_at_kills if 0 < n < ONBOARDING_ROWS]
    assert len(mid_run) >= MIN_KILLS // 2, driven  # kills landed while rows were being sent
    assert driven.resumed_with["resume"] > 0, driven
    assert driven.resumed_with["same"] > 0, driven

    # The server: every valid row applied exactly once, nothing else, despite dropped replies.
    effects = sim.effects()
    expected = {person["external_id"]: 1 for person in people}
    assert effects["employees"]["by_external_id"] == expected
    assert effects["employees"]["created"] == ONBOARDING_ROWS
    assert set(effects["by_idempotency_key"].values()) == {1}
    assert effects["faults"]["commit_drop"] > 0
    server_ids = {e["external_id"]: e["employee_id"] for e in list_all(sim, "employees")}

    # The results file: every row once, with the id the server gave that employee.
    results = read_csv(run_dir / "results.csv")
    assert [int(r["row"]) for r in results] == list(range(2, ONBOARDING_ROWS + 2))
    assert [r["external_id"] for r in results] == [p["external_id"] for p in people]
    for line in results:
        assert line["employee_id"] == server_ids[line["external_id"]], line
        assert line["status"] in {"created", "replayed"}, line
    assert any(line["status"] == "replayed" for line in results)
    assert read_csv(run_dir / "rejects.csv") == []

    records = assert_journal_sound(run_dir, ONBOARDING_ROWS)
    assert [r[2] for r in records] == [server_ids[p["external_id"]] for p in people]
    report = json.loads((run_dir / "report.json").read_text())
    assert succeeded(report["rows"]["journal"]) == ONBOARDING_ROWS
    assert report["invocation"]["exit_code"] == 0

    # The journal holds keys and hashes, never a name, email, tax id or bank number.
    personal = {
        p[column]
        for p in people
        for column in ("first_name", "last_name", "email", "tax_id", "bank_account_number")
    }
    # Salaries ("52500.00"); hourly rates ("27.35") are too short to search without chance hits.
    personal |= {p["compensation_amount"] for p in people if p["compensation_type"] == "salary"}
    assert min(len(value.encode()) for value in personal) >= 5
    assert find_values_in_files(journal_path(run_dir), personal) == []


def test_onboarding_interrupted_by_sigint_stops_gracefully_and_resumes_exactly_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """SIGINT stops a run with exit 130, resumable; resumed, every row has one effect."""
    sim = make_simulator_thread(limits=LIMITS, faults=FAULTS)
    source = tmp_path / "people.csv"
    people = write_onboarding(source, SIGINT_ROWS, prefix="SI")
    run_dir = tmp_path / "run"
    args = ["onboard", str(source), "--run-dir", str(run_dir), *limit_flags(LIMITS)]
    env = cli_env(sim)

    # One interruption looked at closely: every request that was sent has a known outcome.
    proc = start_cli(args, env=env, cwd=tmp_path)
    _wait_for(proc, run_dir, 30, time.monotonic() + INVOCATION_TIMEOUT)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=INVOCATION_TIMEOUT)
    assert proc.returncode == 130, stderr
    assert "resum" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    states = dict(_query(journal_path(run_dir), "SELECT state, count(*) FROM rows GROUP BY state"))
    assert states.get("in_flight", 0) == 0, states
    assert 0 < succeeded(states) < SIGINT_ROWS, states
    interrupted = read_csv(run_dir / "results.csv")
    assert [int(r["row"]) for r in interrupted] == list(range(2, SIGINT_ROWS + 2))
    assert {r["status"] for r in interrupted} <= {"created", "replayed", "pending"}
    report = json.loads((run_dir / "report.json").read_text())
    assert report["invocation"]["stopped"]["error"] == "RunInterrupted"

    # More interruptions at random moments, then resume to the end.
    driven = drive_with_kills(
        args,
        run_dir,
        env=env,
        cwd=tmp_path,
        rows=SIGINT_ROWS,
        min_kills=2,
        rng=random.Random(SEED + 1),
        stop_signal=signal.SIGINT,
    )
    assert driven.kills >= 2

    effects = sim.effects()
    assert effects["employees"]["by_external_id"] == {p["external_id"]: 1 for p in people}
    assert set(effects["by_idempotency_key"].values()) == {1}
    server_ids = {e["external_id"]: e["employee_id"] for e in list_all(sim, "employees")}
    results = read_csv(run_dir / "results.csv")
    assert [r["external_id"] for r in results] == [p["external_id"] for p in people]
    assert all(r["employee_id"] == server_ids[r["external_id"]] for r in results)
    assert {r["status"] for r in results} <= {"created", "replayed"}
    assert_journal_sound(run_dir, SIGINT_ROWS)


def test_payroll_killed_at_random_pays_everyone_once_and_submits_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A payroll run SIGKILLed at random adds one item per employee, one run, submitted once."""
    sim = make_simulator_thread(limits=LIMITS, faults=FAULTS)
    env = cli_env(sim)
    people_file = tmp_path / "people.csv"
    people = write_onboarding(people_file, PAYROLL_EMPLOYEES, prefix="PY")
    onboarded = run_cli(
        ["onboard", str(people_file), "--run-dir", str(tmp_path / "onboard"), *limit_flags(LIMITS)],
        env=env,
        cwd=tmp_path,
        timeout=INVOCATION_TIMEOUT,
    )
    assert onboarded.returncode == 0, onboarded.stderr
    external_ids = [p["external_id"] for p in people]
    payroll_file = tmp_path / "payroll.csv"
    total = write_payroll(payroll_file, external_ids)
    run_dir = tmp_path / "payroll-run"
    args = [
        "payroll",
        str(payroll_file),
        *PERIOD_FLAGS,
        "--expected-total",
        f"{total:.2f}",
        "--expected-count",
        str(PAYROLL_EMPLOYEES),
        "--run-dir",
        str(run_dir),
        *limit_flags(LIMITS),
    ]

    driven = drive_with_kills(
        args,
        run_dir,
        env=env,
        cwd=tmp_path,
        rows=PAYROLL_EMPLOYEES,
        min_kills=PAYROLL_MIN_KILLS,
        rng=random.Random(SEED + 2),
    )
    assert driven.kills >= PAYROLL_MIN_KILLS

    effects = sim.effects()
    assert effects["payroll_runs"]["created"] == 1
    (run_id,) = effects["runs_submitted"]
    assert effects["runs_submitted"] == {run_id: 1}
    employee_ids = {e["external_id"]: e["employee_id"] for e in list_all(sim, "employees")}
    assert effects["payroll_items"]["by_run_and_employee"] == {
        f"{run_id}:{employee_ids[ext]}": 1 for ext in external_ids
    }
    assert set(effects["by_idempotency_key"].values()) == {1}
    run = api_get(sim, f"payroll_runs/{run_id}")
    assert run["status"] == "submitted"
    assert run["item_count"] == PAYROLL_EMPLOYEES
    assert Decimal(run["total"]) == total
    assert driven.final is not None
    assert run_id in driven.final.stderr + driven.final.stdout

    stubs = list_all(sim, "paystubs", {"payroll_run_id": run_id})
    items = {stub["employee_id"]: stub["item_id"] for stub in stubs}
    assert len(stubs) == len(items) == PAYROLL_EMPLOYEES
    results = read_csv(run_dir / "results.csv")
    assert [r["employee_reference"] for r in results] == external_ids
    for line in results:
        assert line["item_id"] == items[employee_ids[line["employee_reference"]]], line
        # already_existed: a row in flight at a kill whose item the run already held, equal to
        # the row, when the resumed job read the run's items (nothing re-sent for it).
        assert line["status"] in {"created", "replayed", "already_existed"}, line
    assert_journal_sound(run_dir, PAYROLL_EMPLOYEES)
    assert json.loads((run_dir / "report.json").read_text())["meta"]["payroll_run_id"] == run_id


def test_a_kill_while_the_journal_is_being_created_leaves_a_usable_run_directory(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """The empty database a kill inside journal creation leaves does not block the next run."""
    sim = make_simulator_thread(limits=LIMITS)
    source = tmp_path / "people.csv"
    people = write_onboarding(source, 20, prefix="UB")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    journal_path(run_dir).touch(mode=0o600)  # created, schema not yet committed: then SIGKILL
    args = ["onboard", str(source), "--run-dir", str(run_dir), *limit_flags(LIMITS)]

    result = run_cli(args, env=cli_env(sim), cwd=tmp_path, timeout=INVOCATION_TIMEOUT)

    assert result.returncode == 0, result.stderr
    assert sim.effects()["employees"]["by_external_id"] == {p["external_id"]: 1 for p in people}
    assert_journal_sound(run_dir, 20)


def test_a_file_that_is_not_a_journal_is_refused_not_replaced(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """Only an empty database is taken for an unborn journal: other bytes are never deleted."""
    sim = make_simulator_thread(limits=LIMITS)
    source = tmp_path / "people.csv"
    write_onboarding(source, 5, prefix="NJ")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    journal_path(run_dir).write_bytes(b"somebody's notes, not a database\n")
    args = ["onboard", str(source), "--run-dir", str(run_dir), *limit_flags(LIMITS)]

    result = run_cli(args, env=cli_env(sim), cwd=tmp_path, timeout=INVOCATION_TIMEOUT)

    assert result.returncode == 2, result.stderr
    assert "not a flexpay-batch journal" in result.stderr
    assert journal_path(run_dir).read_bytes() == b"somebody's notes, not a database\n"
    assert sim.effects()["requests"]["total"] == 0
