"""``onboard --dry-run``: header, rows and the server's reference data checked; nothing
written, no run directory; what would be sent is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MakeSimulatorThread
from tests.harness import cli_env, fast_limits, limit_flags, run_cli

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


def test_dry_run_is_refused_for_payroll_whose_pre_flight_writes(tmp_path: Path) -> None:
    """payroll has no --dry-run: it would have to create the draft run."""
    result = run_cli(["payroll", "-h"], env={"COLUMNS": "200"}, cwd=tmp_path)
    assert "--dry-run" not in result.stdout
