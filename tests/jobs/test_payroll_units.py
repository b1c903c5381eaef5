"""The pieces of issue 11 that need no server: item comparison, the run-directory rules.

- ``payroll_reconcile``: what counts as "the same item", the PATCH that makes two equal, and
  the operator's sentences (employee ids only, never amounts).
- ``engine.opening``: a payroll whose file changed begins a new job in the same run directory
  (old journal kept under ``previous-*``); an onboarding whose file changed is still refused.
- ``engine.rundir``: the default run directory is under the state directory, not the cwd.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from flexpay_batch.core import errors
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.opening import open_journal
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.rundir import default_run_dir, state_dir
from flexpay_batch.jobs.payroll import ControlTotals, PayPeriod, payroll_parameters
from flexpay_batch.jobs.payroll_reconcile import ItemFigures, compare, total_of
from flexpay_batch.journal.jobinfo import JobInfo

PERIOD = PayPeriod("pg_weekly", date(2026, 3, 2), date(2026, 3, 8), date(2026, 3, 13))


def figures(gross: str, hours: str | None = None, memo: str | None = None) -> ItemFigures:
    return ItemFigures.of_item(
        {"gross_amount": gross, "currency": "USD", "hours": hours, "memo": memo}
    )


def test_the_same_amount_in_another_scale_is_the_same_item() -> None:
    """ "10.5" on the server and "10.50" in the file need no PATCH; an empty memo is no memo."""
    assert figures("10.5", "40", "").same_as(figures("10.50", "40.00", None))
    assert not figures("10.50").same_as(figures("10.51"))


def test_the_patch_holds_only_what_differs_and_clears_with_null() -> None:
    """Only changed fields are sent; hours removed in the file are cleared on the server."""
    server = figures("100.00", "40.00", "Weekly")
    assert server.patch_to(figures("100.00", None, "Weekly")) == {"hours": None}
    assert server.patch_to(figures("120.5", "40", "Weekly")) == {"gross_amount": "120.50"}
    assert server.patch_to(server) == {}


def test_compare_names_changed_missing_and_extra_employees_without_amounts() -> None:
    """The differences name employee ids and field names, never a figure."""
    file = {"emp_1": figures("1.00"), "emp_2": figures("2.00"), "emp_3": figures("3.00")}
    server = {"emp_1": figures("1.00"), "emp_2": figures("2.50", "8"), "emp_9": figures("9.00")}
    diff = compare(file, server)
    assert diff.changed == {"emp_2": ["gross_amount", "hours"]}
    assert diff.missing == ["emp_3"]
    assert diff.extra == ["emp_9"]
    text = " ".join(diff.sentences())
    assert all(employee in text for employee in ("emp_2", "emp_3", "emp_9"))
    assert not any(amount in text for amount in ("2.50", "9.00"))
    assert compare(file, file).none
    assert total_of(file) == Decimal("6.00")


def test_a_period_is_described_as_the_issue_shows_it() -> None:
    """``pg_weekly 2026-03-02..08`` within a month; the full end date across a year."""
    assert PERIOD.describe() == "pg_weekly 2026-03-02..08"
    across = PayPeriod("pg", date(2026, 12, 28), date(2027, 1, 3), date(2027, 1, 8))
    assert across.describe() == "pg 2026-12-28..2027-01-03"


def _request(kind: str, file: Path, parameters: dict[str, object]) -> RunRequest:
    return RunRequest(kind=kind, input_path=file, settings=Settings(), parameters=parameters)


def _job(kind: str, sha: str, parameters: dict[str, object]) -> JobInfo:
    return JobInfo.new(
        kind=kind,  # type: ignore[arg-type]
        input_path="/in/pay.csv",
        input_sha256=sha,
        base_url="https://api.flexpay.dev/v1/",
        token_fingerprint="sha256:0123456789ab",
        config={"job": parameters},
    )


def test_a_changed_payroll_file_begins_a_new_job_in_the_same_run_directory(
    tmp_path: Path,
) -> None:
    """Same period, fixed file: a new job (new secret), the old journal set aside, not refused."""
    params = payroll_parameters(PERIOD, submit=True, control=ControlTotals())
    request = _request("payroll", tmp_path / "pay.csv", params)
    with open_journal(request, tmp_path / "run", _job("payroll", "a" * 64, params)) as first:
        first_id, first_secret = first.job.job_id, first.job.secret
    # Changeable parameters (prune, control figures) may change too.
    fixed = {**params, "prune": True}
    with open_journal(request, tmp_path / "run", _job("payroll", "b" * 64, fixed)) as second:
        assert second.job.job_id != first_id
        assert second.job.secret != first_secret
        assert second.job.input_sha256 == "b" * 64
    assert list((tmp_path / "run").glob("previous-*/journal.sqlite"))


def test_a_changed_payroll_file_for_another_period_is_still_refused(tmp_path: Path) -> None:
    """Only the file may change: another period (or off-cycle) in the same directory is refused."""
    params = payroll_parameters(PERIOD, submit=True, control=ControlTotals())
    request = _request("payroll", tmp_path / "pay.csv", params)
    with open_journal(request, tmp_path / "run", _job("payroll", "a" * 64, params)):
        pass
    other = payroll_parameters(
        dataclasses.replace(PERIOD, pay_date=date(2026, 3, 14)),
        submit=True,
        control=ControlTotals(),
    )
    with pytest.raises(errors.ResumeRefused):
        open_journal(request, tmp_path / "run", _job("payroll", "b" * 64, other))
    off = {**params, "off_cycle": True}
    with pytest.raises(errors.ResumeRefused):
        open_journal(request, tmp_path / "run", _job("payroll", "b" * 64, off))


def test_a_changed_onboarding_file_is_still_refused(tmp_path: Path) -> None:
    """Onboarding has no run to reconcile: a changed input stays a refusal."""
    request = _request("onboarding", tmp_path / "people.csv", {})
    with open_journal(request, tmp_path / "run", _job("onboarding", "a" * 64, {})):
        pass
    with pytest.raises(errors.ResumeRefused, match="input file changed"):
        open_journal(request, tmp_path / "run", _job("onboarding", "b" * 64, {}))


def test_the_default_run_directory_is_in_the_state_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLEXPAY_STATE_DIR wins; without it, platformdirs' user state dir; never cwd-relative."""
    request = _request("payroll", Path("somewhere/pay.csv"), {})
    env = {"FLEXPAY_STATE_DIR": str(tmp_path)}
    assert default_run_dir(request, "f" * 64, env) == tmp_path / "runs" / "payroll-pay-ffffffff"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir({}).is_absolute()
    assert default_run_dir(request, "f" * 64, {}).is_absolute()
