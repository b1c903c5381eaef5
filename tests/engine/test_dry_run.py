"""``onboard --dry-run`` and ``payroll --dry-run``: header, rows and the server's data checked
with reads only; nothing written (the simulator's effect ledger says so), no run directory;
what would be sent, and what the run's finish would do, is printed."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.sim import SimulatorThread
from tests.conftest import MakeSimulatorThread
from tests.harness import PERIOD_FLAGS, cli_env, fast_limits, limit_flags, run_cli, write_onboarding

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FLAGS = limit_flags(fast_limits(writes_per_second=1000.0, write_burst=100))

pytestmark = pytest.mark.slow


def test_dry_run_reads_but_never_writes(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """The sample: 494 would be sent, 6 rejected (one by the server's pay groups); exit 1;
    the simulator saw reads only; no run directory."""
    sim = make_simulator_thread()
    run_dir = tmp_path / "run"
    args = ["onboard", str(SAMPLES / "onboarding.csv"), "--dry-run", "--run-dir", str(run_dir)]
    result = run_cli([*args, *FLAGS], env=cli_env(sim), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "would send 494 x POST /employees, would reject 6" in result.stdout
    assert "row 241, field pay_group_id" in result.stderr  # known only to the server
    effects = sim.effects()
    assert effects["employees"]["created"] == 0
    assert effects["requests"]["total"] > 0  # the pre-flight read pay groups and types
    assert not run_dir.exists()
    assert not (tmp_path / ".flexpay").exists()


# ── payroll ────────────────────────────────────────────────────────────────────────────────

PEOPLE = 6


def _writes(sim: SimulatorThread) -> dict[str, Any]:
    """Every write the simulator's effect ledger counts (reads leave these alone)."""
    effects = sim.effects()
    return {
        "employees": effects["employees"]["created"],
        "runs": effects["payroll_runs"]["created"],
        "items": effects["payroll_items"]["added"],
        "changes": effects["payroll_item_changes"],
        "submitted": effects["runs_submitted"],
        "keys": effects["by_idempotency_key"],
    }


def _payroll_file(path: Path, external_ids: Sequence[str], *, bump: str | None = None) -> Path:
    """A payroll file paying each employee 1000.00 (``bump``: 1234.56 instead)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["employee_external_id", "hours", "gross_amount", "currency", "memo"])
        for external_id in external_ids:
            amount = "1234.56" if external_id == bump else "1000.00"
            writer.writerow([external_id, "40.00", amount, "USD", "Weekly"])
    return path


class Payroll:
    """A simulator with ``PEOPLE`` employees onboarded, and the payroll command against it."""

    def __init__(self, sim: SimulatorThread, tmp_path: Path) -> None:
        self.sim = sim
        self.tmp_path = tmp_path
        people = write_onboarding(tmp_path / "people.csv", PEOPLE, prefix="DR")
        self.ids = [person["external_id"] for person in people]
        onboarded = self.cli(["onboard", str(tmp_path / "people.csv")], run="onboard")
        assert onboarded.returncode == 0, onboarded.stderr

    def cli(self, args: list[str], *, run: str = "payroll") -> Any:
        run_dir = ["--run-dir", str(self.tmp_path / run)]
        return run_cli([*args, *run_dir, *FLAGS], env=cli_env(self.sim), cwd=self.tmp_path)

    def payroll(self, source: Path, *extra: str) -> Any:
        return self.cli(["payroll", str(source), *PERIOD_FLAGS, *extra])

    def dry_run(self, source: Path, *extra: str) -> Any:
        """``payroll --dry-run``, checked to have written nothing and made no run directory."""
        before = _writes(self.sim)
        result = self.cli(["payroll", str(source), *PERIOD_FLAGS, "--dry-run", *extra], run="dry")
        assert _writes(self.sim) == before
        assert not (self.tmp_path / "dry").exists()
        return result


@pytest.fixture
def payroll(make_simulator_thread: MakeSimulatorThread, tmp_path: Path) -> Payroll:
    return Payroll(make_simulator_thread(), tmp_path)


def test_payroll_dry_run_plans_a_new_run_and_its_submission(payroll: Payroll) -> None:
    """No run for the period yet: the dry run would create one, add every item and submit it
    (exit 0); a control total that differs would leave it in draft (exit 1). Reads only."""
    source = _payroll_file(payroll.tmp_path / "pay.csv", payroll.ids)
    result = payroll.dry_run(source, "--expected-total", "6000.00")
    assert result.returncode == 0, result.stderr
    assert "would create the period's regular run for pg_weekly 2026-03-02..08" in result.stdout
    assert f"would send {PEOPLE} x POST /payroll_runs/{{id}}/items, would reject 0" in result.stdout
    assert "would be submitted: 6 items, total 6000.00" in result.stdout
    assert payroll.sim.effects()["requests"]["total"] > 0  # the pre-flight did read

    wrong = payroll.dry_run(source, "--expected-total", "5999.99")
    assert wrong.returncode == 1, wrong.stderr
    assert "would be left in draft: expected total 5999.99 (control)" in wrong.stdout


def test_payroll_dry_run_rejects_unknown_employees_and_pay_groups(payroll: Payroll) -> None:
    """An unknown pay group stops it (exit 2); rows naming no known employee are listed as
    rejected and the run would stay in draft (exit 1). Nothing written either way."""
    source = _payroll_file(payroll.tmp_path / "pay.csv", [*payroll.ids, "NOBODY1"])
    flags = list(PERIOD_FLAGS)
    flags[flags.index("pg_weekly")] = "pg_nope"
    before = _writes(payroll.sim)
    unknown_group = payroll.cli(["payroll", str(source), *flags, "--dry-run"], run="dry")
    assert unknown_group.returncode == 2, unknown_group.stderr
    assert "pay group 'pg_nope' does not exist" in unknown_group.stderr
    assert _writes(payroll.sim) == before

    result = payroll.dry_run(source)
    assert result.returncode == 1, result.stderr
    assert "row 8, field employee_external_id: no such employee" in result.stderr
    assert f"would send {PEOPLE} x POST /payroll_runs/{{id}}/items, would reject 1" in result.stdout
    assert "would be left in draft: not every row would be accepted" in result.stdout


def test_payroll_dry_run_adopts_the_periods_draft(payroll: Payroll) -> None:
    """A draft left by --no-submit: the dry run would PATCH the changed item, leave the rest,
    and name the item the file no longer has (--prune would delete it)."""
    full = _payroll_file(payroll.tmp_path / "pay.csv", payroll.ids)
    drafted = payroll.payroll(full, "--no-submit")
    assert drafted.returncode == 0, drafted.stderr
    fixed = _payroll_file(payroll.tmp_path / "fixed.csv", payroll.ids[1:], bump=payroll.ids[1])

    result = payroll.dry_run(fixed)
    assert result.returncode == 1, result.stderr
    assert "would adopt the period's draft run" in result.stdout
    assert "would send 1 x PATCH /payroll_runs/" in result.stdout
    assert f"{PEOPLE - 2} already on the server as in the file, would reject 0" in result.stdout
    assert "1 items on the run are for employees not in the file" in result.stdout

    pruned = payroll.dry_run(fixed, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "would delete 1 items for employees not in the file (--prune)" in pruned.stdout
    assert "would be submitted: 5 items" in pruned.stdout


def test_payroll_dry_run_of_a_submitted_period_sends_nothing(payroll: Payroll) -> None:
    """The period is submitted: the same file matches (exit 0, nothing to send); a changed
    amount is a rejected row and the run differs, pointing at --off-cycle (exit 1)."""
    source = _payroll_file(payroll.tmp_path / "pay.csv", payroll.ids)
    submitted = payroll.payroll(source)
    assert submitted.returncode == 0, submitted.stderr
    assert len(payroll.sim.effects()["runs_submitted"]) == 1

    same = payroll.dry_run(source)
    assert same.returncode == 0, same.stderr
    assert "was already submitted as" in same.stdout
    assert f"would send nothing, {PEOPLE} already on the server as in the file" in same.stdout
    assert "it matches the file; nothing would be sent" in same.stdout

    changed = _payroll_file(payroll.tmp_path / "changed.csv", payroll.ids, bump=payroll.ids[0])
    differs = payroll.dry_run(changed)
    assert differs.returncode == 1, differs.stderr
    assert "row 2, field employee_external_id: run" in differs.stderr
    assert "already submitted with other figures (gross_amount)" in differs.stderr
    assert "it differs from the file; nothing would be sent" in differs.stdout
    assert "--off-cycle" in differs.stdout
