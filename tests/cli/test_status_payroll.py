"""``status`` of a payroll whose rows are all settled but whose run was not submitted: it reads
``incomplete`` (not ``finished``), says the run is left in draft and the step that submits it,
in text and ``--json``; once the run is submitted it reads ``finished``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.cli.status import read_status, show_status
from flexpay_batch.core import errors
from flexpay_batch.jobs import payroll as payroll_job
from tests.harness import run_cli
from tests.jobs.test_payroll_inprocess import LIMITS, add_employees, run_payroll, write_pay

pytestmark = pytest.mark.slow


async def _paid(make_simulator: Any, tmp_path: Path) -> tuple[Any, Path]:
    sim = await make_simulator(limits=LIMITS)
    people = await add_employees(sim, 4)
    return sim, write_pay(tmp_path / "pay.csv", {ext: ("500.00", "40") for ext in people})


async def test_no_submit_reads_incomplete_until_the_run_is_submitted(
    make_simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-submit: every row created, the run left in draft: incomplete (exit 1) with the
    command that submits it; the same command without --no-submit makes it finished (0)."""
    sim, source = await _paid(make_simulator, tmp_path)
    run_dir = tmp_path / "run"
    drafted = await run_payroll(sim, source, run_dir, submit=False)
    assert drafted.exit_code == 0
    assert sim.effects()["runs_submitted"] == {}

    report = read_status(run_dir)
    assert report["state"] == "incomplete"
    assert report["left"] == 0
    run_id = report["meta"]["payroll_run_id"]
    assert report["unfinished_work"] == (
        f"payroll run {run_id} left in draft: not submitted (--no-submit)"
    )
    assert report["next_step"] == "to submit it, run the same payroll command without --no-submit"

    assert show_status(run_dir, as_json=False) == 1
    text = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns
    assert "incomplete: every row is settled, but payroll run" in text
    assert "left in draft: not submitted (--no-submit)" in text
    assert "finished" not in text

    submitted = await run_payroll(sim, source, run_dir, submit=True)
    assert submitted.exit_code == 0
    assert sim.effects()["runs_submitted"] == {run_id: 1}
    report = read_status(run_dir)
    assert report["state"] == "finished"
    assert report["unfinished_work"] is None
    assert report["next_step"] is None


async def test_a_payroll_stopped_before_its_finish_reads_incomplete_and_says_resume(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows all in, stopped before the submit: incomplete, "left in draft: not submitted",
    and ``flexpay-batch resume DIR`` as the next step, in ``status --json`` and the text."""
    sim, source = await _paid(make_simulator, tmp_path)
    run_dir = tmp_path / "run"

    async def stop(*args: object, **kwargs: object) -> None:
        raise errors.ServiceUnhealthy("the API kept failing")

    with monkeypatch.context() as patch:
        patch.setattr(payroll_job.PayrollJob, "finish", stop)
        stopped = await run_payroll(sim, source, run_dir)
    assert isinstance(stopped.stopped, errors.ServiceUnhealthy)
    assert sim.effects()["payroll_items"]["added"] == 4

    result = run_cli(["status", "--json", str(run_dir)], env={}, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "incomplete"
    run_id = report["meta"]["payroll_run_id"]
    assert report["unfinished_work"] == f"payroll run {run_id} left in draft: not submitted"
    assert report["next_step"] == f"flexpay-batch resume {run_dir}"
    text = run_cli(["status", str(run_dir)], env={"COLUMNS": "1000"}, cwd=tmp_path)
    assert text.returncode == 1, text.stderr
    assert f"next: `flexpay-batch resume {run_dir}`" in text.stdout

    resumed = await run_payroll(sim, source, run_dir)
    assert resumed.exit_code == 0
    assert read_status(run_dir)["state"] == "finished"


async def test_a_run_left_in_draft_by_its_figures_reads_incomplete(
    make_simulator: Any, tmp_path: Path
) -> None:
    """Items the file does not have block the submit: incomplete, saying the run differs."""
    sim, source = await _paid(make_simulator, tmp_path)
    first = await run_payroll(sim, source, tmp_path / "first", submit=False)
    assert first.exit_code == 0
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("\n".join(source.read_text().splitlines()[:-1]) + "\n")
    second = await run_payroll(sim, fewer, tmp_path / "second")
    assert second.exit_code == 1
    report = read_status(tmp_path / "second")
    assert report["state"] == "incomplete"
    assert "left in draft: not submitted, it differs from the file" in report["unfinished_work"]
    assert report["next_step"].startswith("fix the file or the figures")
