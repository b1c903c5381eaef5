"""How a bureau job ended and the run's exit code: the gravest job wins, 130 when stopped;
a stopped job's hint says to run the manifest again."""

from __future__ import annotations

from pathlib import Path

from flexpay_batch.bureau.outcome import JobLabel, JobOutcome, overall_exit_code
from flexpay_batch.core import errors


def _outcome(code: int) -> JobOutcome:
    state = "done" if code == 0 else "incomplete" if code == 1 else "stopped"
    return JobOutcome(JobLabel(1, "acme", "onboard"), state, code)


def test_the_run_exits_with_its_gravest_job() -> None:
    """0 all done; 1 some rows; an abort (3) before an outage (4); 130 when interrupted."""
    assert overall_exit_code([_outcome(0), _outcome(0)], interrupted=False) == 0
    assert overall_exit_code([_outcome(0), _outcome(1)], interrupted=False) == 1
    assert overall_exit_code([_outcome(4), _outcome(3), _outcome(1)], interrupted=False) == 3
    assert overall_exit_code([_outcome(4), _outcome(2)], interrupted=False) == 2
    assert overall_exit_code([_outcome(0), _outcome(3)], interrupted=True) == 130


def test_a_stopped_jobs_hint_says_run_the_manifest_again(tmp_path: Path) -> None:
    """An outage's hint names the same run command first, then this job's resume."""
    label = JobLabel(2, "beta", "onboard")
    outcome = JobOutcome.from_error(
        label, "beta-onboard-1", errors.ServiceUnhealthy("the API kept failing"), run_dir=tmp_path
    )
    assert outcome.exit_code == 4
    assert "the same `flexpay-batch run MANIFEST`" in outcome.hint
    assert f"`flexpay-batch resume {tmp_path}`" in outcome.hint


def test_a_failed_jobs_error_does_not_repeat_its_name() -> None:
    """verify_file's and job_token's messages begin with the job's name, which the board
    shows before the error already: 'job 2 (acme, payroll): job 2 (acme, payroll): …' no more."""
    label = JobLabel(2, "acme", "payroll")
    exc = errors.InputFileError("job 2 (acme, payroll): the file /srv/pay.csv changed")
    outcome = JobOutcome.from_error(label, "acme-payroll-1", exc)
    assert outcome.error == "the file /srv/pay.csv changed"
