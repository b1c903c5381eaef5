"""One regular payroll per pay group and period, wherever the command runs (issue 11).

The real CLI, as processes, against the simulator over HTTPS: the same file from two run
directories, a draft left by a bad row and finished with the fixed file, a submitted run met
with another file, ``--off-cycle``, ``--prune``, and SIGKILL at random points while a draft is
being reconciled. "Exactly once" is read from the simulator's effect ledger.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.input.columns import PAYROLL_COLUMNS
from flexpay_batch.sim import SimulatorThread
from tests.conftest import MakeSimulatorThread
from tests.harness import (
    CPU_BOUND_FLAGS,
    CPU_BOUND_LIMITS,
    PERIOD_FLAGS,
    api_get,
    cli_env,
    fast_limits,
    limit_flags,
    list_all,
    run_cli,
    start_cli,
    write_onboarding,
)

pytestmark = pytest.mark.slow

PERIOD_KEY = "pg_weekly:2026-03-02:2026-03-08:regular"
EMPLOYEES = 12

Pay = dict[str, str]


def onboard(sim: SimulatorThread, tmp_path: Path, count: int = EMPLOYEES) -> list[str]:
    """Create ``count`` employees through the CLI; return their external ids."""
    people = tmp_path / "people.csv"
    rows = write_onboarding(people, count, prefix="PR")
    args = ["onboard", str(people), "--run-dir", str(tmp_path / "onboard"), *CPU_BOUND_FLAGS]
    result = run_cli(args, env=cli_env(sim), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return [row["external_id"] for row in rows]


def pay(external_ids: Sequence[str], *, seed: int = 0) -> dict[str, Pay]:
    """One row per employee: a payroll file's content, by external id."""
    rng = random.Random(seed)
    return {
        ext: {
            "employee_external_id": ext,
            "hours": f"{rng.randint(20, 40)}.00",
            "gross_amount": f"{rng.randint(50_000, 300_000) / 100:.2f}",
            "currency": "USD",
            "memo": "Weekly pay",
        }
        for ext in external_ids
    }


def write_pay(path: Path, rows: Mapping[str, Pay], *, bad: Sequence[Pay] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PAYROLL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows.values())
        writer.writerows(bad)
    return path


def env_of(sim: SimulatorThread, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment with this test's own state directory (default run dirs)."""
    return cli_env(sim, extra={"FLEXPAY_STATE_DIR": str(tmp_path / "state")})


def payroll(
    sim: SimulatorThread, file: Path, cwd: Path, *extra: str, flags: Sequence[str] = CPU_BOUND_FLAGS
) -> Any:
    """``flexpay-batch payroll FILE`` for the test period, run from ``cwd``."""
    args = ["payroll", str(file), *PERIOD_FLAGS, *flags, *extra]
    return run_cli(args, env=env_of(sim, cwd), cwd=cwd)


def run_items(sim: SimulatorThread, run_id: str) -> dict[str, tuple[Decimal, Decimal | None]]:
    """The run's items as employee id -> (gross, hours)."""
    items = list_all(sim, f"payroll_runs/{run_id}/items")
    return {
        i["employee_id"]: (
            Decimal(i["gross_amount"]),
            None if i["hours"] is None else Decimal(i["hours"]),
        )
        for i in items
    }


def employee_ids(sim: SimulatorThread) -> dict[str, str]:
    return {e["external_id"]: e["employee_id"] for e in list_all(sim, "employees")}


def expected_items(
    sim: SimulatorThread, rows: Mapping[str, Pay]
) -> dict[str, tuple[Decimal, Decimal | None]]:
    ids = employee_ids(sim)
    return {
        ids[ext]: (Decimal(r["gross_amount"]), Decimal(r["hours"]) if r["hours"] else None)
        for ext, r in rows.items()
    }


def item_writes(sim: SimulatorThread) -> int:
    """Item adds and changes so far (the effect ledger)."""
    effects = sim.effects()
    changes = effects["payroll_item_changes"]
    return int(effects["payroll_items"]["added"] + changes["patched"] + changes["deleted"])


def wait_for_writes(sim: SimulatorThread, proc: Any, count: int, timeout: float = 60.0) -> None:
    """Return once ``count`` more item writes landed, or the process ended (bounded)."""
    target = item_writes(sim) + count
    deadline = time.monotonic() + timeout
    while item_writes(sim) < target and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def the_regular_run(sim: SimulatorThread) -> dict[str, Any]:
    runs = list_all(sim, "payroll_runs", {"pay_group_id": "pg_weekly", "type": "regular"})
    assert len(runs) == 1, runs
    run: dict[str, Any] = runs[0]
    return run


def test_the_same_file_from_two_run_directories_makes_one_run_submitted_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """Two run directories, the same file: one run, submitted once; the second says so, exit 0."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    rows = pay(onboard(sim, tmp_path))
    file = write_pay(tmp_path / "pay.csv", rows)

    first = payroll(sim, file, tmp_path, "--run-dir", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    before = sim.effects()
    second = payroll(sim, file, tmp_path, "--run-dir", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    after = sim.effects()

    run = the_regular_run(sim)
    assert after["runs_submitted"] == {run["payroll_run_id"]: 1}
    assert after["payroll_runs_by_period"] == {PERIOD_KEY: 1}
    assert after["payroll_items"] == before["payroll_items"]
    assert after["payroll_item_changes"]["patched"] == 0
    assert (
        f"payroll for pg_weekly 2026-03-02..08 was already submitted as {run['payroll_run_id']}"
        in second.stderr
    )
    assert "it matches the file; nothing sent" in second.stderr


def test_a_draft_left_by_a_bad_row_is_finished_by_the_fixed_file(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """Bad row → draft (exit 1); the fixed file, same command and run dir → same run, PATCHed
    where figures changed, submitted once with the file's figures. No --restart."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    externals = onboard(sim, tmp_path)
    rows = pay(externals)
    bad = {**rows[externals[0]], "employee_external_id": "NOBODY"}
    file = write_pay(tmp_path / "pay.csv", rows, bad=[bad])
    run_dir = ["--run-dir", str(tmp_path / "weekly")]

    first = payroll(sim, file, tmp_path, *run_dir)
    assert first.returncode == 1, first.stderr
    run = the_regular_run(sim)
    assert run["status"] == "draft"

    # The operator drops the bad row and corrects two amounts and one employee's hours.
    fixed = {ext: dict(r) for ext, r in rows.items()}
    fixed[externals[1]]["gross_amount"] = "1234.56"
    fixed[externals[2]]["gross_amount"] = "99.01"
    fixed[externals[3]]["hours"] = ""
    write_pay(file, fixed)
    second = payroll(sim, file, tmp_path, *run_dir)
    assert second.returncode == 0, second.stderr

    effects = sim.effects()
    run_id = run["payroll_run_id"]
    assert the_regular_run(sim)["status"] == "submitted"
    assert effects["runs_submitted"] == {run_id: 1}
    assert effects["payroll_runs"]["created"] == 1
    assert effects["payroll_item_changes"]["patched"] == 3
    assert set(effects["payroll_items"]["by_run_and_employee"].values()) == {1}
    assert run_items(sim, run_id) == expected_items(sim, fixed)
    assert f"{run_id} submitted" in second.stderr
    assert "the period's draft, found on the server" in second.stderr
    # The first job's journal was set aside, not deleted.
    assert list((tmp_path / "weekly").glob("previous-*/journal.sqlite"))


def test_restart_adopts_the_periods_draft_instead_of_leaving_it_behind(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """--restart begins a new job, which adopts and submits the draft: still one run."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    file = write_pay(tmp_path / "pay.csv", pay(onboard(sim, tmp_path)))
    assert payroll(sim, file, tmp_path, "--no-submit").returncode == 0
    (draft,) = list_all(sim, "payroll_runs")
    result = payroll(sim, file, tmp_path, "--restart")
    assert result.returncode == 0, result.stderr
    effects = sim.effects()
    assert effects["payroll_runs"]["created"] == 1
    assert effects["runs_submitted"] == {draft["payroll_run_id"]: 1}
    assert set(effects["payroll_items"]["by_run_and_employee"].values()) == {1}
    assert effects["payroll_item_changes"]["patched"] == 0


def test_a_submitted_run_and_a_different_file_send_nothing_and_exit_1(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """After submission a changed file (even with --restart) sends no write, says what differs
    and points at --off-cycle; exit 1."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    externals = onboard(sim, tmp_path)
    rows = pay(externals)
    file = write_pay(tmp_path / "pay.csv", rows)
    assert payroll(sim, file, tmp_path).returncode == 0
    before = sim.effects()

    changed = {ext: dict(r) for ext, r in rows.items()}
    changed[externals[0]]["gross_amount"] = "1.00"
    result = payroll(sim, write_pay(tmp_path / "pay2.csv", changed), tmp_path, "--restart")
    assert result.returncode == 1, result.stderr
    after = sim.effects()
    writes = ("payroll_items", "payroll_item_changes", "runs_submitted", "payroll_runs")
    assert {k: after[k] for k in writes} == {k: before[k] for k in writes}
    assert "it differs from the file; nothing sent" in result.stderr
    assert "--off-cycle" in result.stderr
    assert "1 items differ from the file (gross_amount)" in result.stderr


def test_off_cycle_makes_a_second_run_for_the_period(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """--off-cycle creates and submits its own run beside the period's regular one."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    externals = onboard(sim, tmp_path)
    assert payroll(sim, write_pay(tmp_path / "pay.csv", pay(externals)), tmp_path).returncode == 0
    bonus = pay(externals[:3], seed=7)
    result = payroll(sim, write_pay(tmp_path / "bonus.csv", bonus), tmp_path, "--off-cycle")
    assert result.returncode == 0, result.stderr
    effects = sim.effects()
    assert effects["payroll_runs_by_period"] == {
        PERIOD_KEY: 1,
        "pg_weekly:2026-03-02:2026-03-08:off_cycle": 1,
    }
    assert effects["runs_submitted_by_period"] == {
        PERIOD_KEY: 1,
        "pg_weekly:2026-03-02:2026-03-08:off_cycle": 1,
    }
    (off,) = list_all(sim, "payroll_runs", {"type": "off_cycle"})
    assert run_items(sim, off["payroll_run_id"]) == expected_items(sim, bonus)


def test_items_the_file_does_not_have_block_submission_until_pruned(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A draft with an employee the file dropped: exit 1 naming --prune; --prune deletes it
    and submits exactly the file."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    externals = onboard(sim, tmp_path)
    rows = pay(externals)
    file = write_pay(tmp_path / "pay.csv", rows)
    assert payroll(sim, file, tmp_path, "--no-submit").returncode == 0
    shorter = {ext: r for ext, r in rows.items() if ext != externals[-1]}
    write_pay(file, shorter)

    blocked = payroll(sim, file, tmp_path)
    assert blocked.returncode == 1, blocked.stderr
    assert "1 items on the run are for employees not in the file" in blocked.stderr
    assert "--prune" in blocked.stderr
    assert sim.effects()["runs_submitted"] == {}

    pruned = payroll(sim, file, tmp_path, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    run = the_regular_run(sim)
    effects = sim.effects()
    assert effects["payroll_item_changes"]["deleted"] == 1
    assert effects["runs_submitted"] == {run["payroll_run_id"]: 1}
    assert run_items(sim, run["payroll_run_id"]) == expected_items(sim, shorter)


def test_sigkill_while_reconciling_then_the_last_file_is_submitted_exactly_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """File versions, each run killed at a random moment from a random run directory; the last
    one runs to the end: the run equals the last file, every item added once, submitted once."""
    slow = fast_limits(writes_per_second=40.0, write_burst=5)
    sim = make_simulator_thread(limits=slow)
    externals = onboard(sim, tmp_path, count=40)
    rng = random.Random(11)
    file = tmp_path / "pay.csv"
    version: dict[str, Pay] = {}
    killed = 0
    for attempt in range(4):
        # Each version changes every figure (PATCHes) and adds employees (never drops any:
        # no --prune here).
        version = pay(externals[: 28 + 4 * attempt], seed=attempt)
        write_pay(file, version)
        run_dir = tmp_path / f"dir{rng.randint(0, 1)}"
        args = ["payroll", str(file), *PERIOD_FLAGS, *limit_flags(slow), "--run-dir", str(run_dir)]
        proc = start_cli(args, env=env_of(sim, tmp_path), cwd=tmp_path)
        # Kill after a random number of this attempt's item writes: a blind timer lands
        # before the first write on a loaded machine.
        wait_for_writes(sim, proc, rng.randint(1, 12))
        proc.kill()
        proc.communicate(timeout=30)  # reaps it and closes its output files
        killed += proc.returncode not in (0, 1)
    assert killed >= 2, "the kills must land while the runs are still working"
    assert sim.effects()["payroll_item_changes"]["patched"] > 0
    last = payroll(sim, file, tmp_path, flags=limit_flags(slow))
    assert last.returncode == 0, last.stderr

    effects = sim.effects()
    run = the_regular_run(sim)
    run_id = run["payroll_run_id"]
    assert effects["payroll_runs_by_period"] == {PERIOD_KEY: 1}
    assert effects["runs_submitted"] == {run_id: 1}
    assert set(effects["payroll_items"]["by_run_and_employee"].values()) == {1}
    assert run_items(sim, run_id) == expected_items(sim, version)
    assert Decimal(api_get(sim, f"payroll_runs/{run_id}")["total"]) == sum(
        Decimal(r["gross_amount"]) for r in version.values()
    )
