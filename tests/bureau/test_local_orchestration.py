"""``run_local``'s orchestration with the job function replaced (no server): concurrency and
lanes respected, a failing or crashing job stops alone, outcomes in manifest order."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from flexpay_batch.bureau import local
from flexpay_batch.bureau.job import BureauJob
from flexpay_batch.bureau.local import LocalJob, run_local
from flexpay_batch.bureau.outcome import overall_exit_code
from flexpay_batch.cli.bureau_progress import PlainBoard
from flexpay_batch.core import errors
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.pipeline import StopControl
from flexpay_batch.engine.request import RunSummary


def _job(number: int, org: str, lane: str) -> LocalJob:
    job = BureauJob(
        org=org,
        kind="onboard",
        engine_kind="onboarding",
        file=f"/srv/{org}/{number}.csv",
        file_sha256=f"{number:064x}",
        token_env=f"FLEXPAY_TOKEN_{org.upper()}",
        token_file=None,
        number=number,
    )
    return LocalJob(job, lane=lane)


class FakeJobs:
    """Stands in for ``run_bureau_job``: each job takes a few loop turns; records overlap."""

    def __init__(self, fail: Mapping[str, BaseException] | None = None) -> None:
        self.fail = dict(fail or {})
        self.running: list[LocalJob] = []
        self.peak = 0
        self.order: list[int] = []
        self.jobs: dict[str, LocalJob] = {}

    async def __call__(self, job: BureauJob, **options: Any) -> RunSummary:
        local_job = self.jobs[job.job_id]
        assert local_job.lane not in {j.lane for j in self.running}
        assert job.org not in {j.job.org for j in self.running}
        self.running.append(local_job)
        self.peak = max(self.peak, len(self.running))
        assert job.number is not None
        self.order.append(job.number)
        try:
            for _ in range(5):
                await anyio.sleep(0)
            if job.org in self.fail:
                raise self.fail[job.org]
            summary = RunSummary(run_dir=options["state_dir"] / job.org)
            summary.journal_counts = {RowStatus.CREATED.value: 3}
            summary.totals.rows = 3
            return summary
        finally:
            self.running.remove(local_job)


async def _run(
    monkeypatch: pytest.MonkeyPatch,
    jobs: list[LocalJob],
    fake: FakeJobs,
    concurrency: int,
    tmp_path: Path,
) -> tuple[list[Any], str]:
    fake.jobs = {job.job.job_id: job for job in jobs}
    monkeypatch.setattr(local, "run_bureau_job", fake)
    stream = io.StringIO()
    board = PlainBoard([job.label for job in jobs], stream)
    outcomes, interrupted = await run_local(
        jobs,
        env={},
        state_dir=tmp_path,
        board=board,
        concurrency=concurrency,
        handle_signals=False,
    )
    assert not interrupted
    return outcomes, stream.getvalue()


@pytest.mark.parametrize("concurrency", [1, 2, 4])
async def test_never_more_than_concurrency_and_orgs_take_turns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, concurrency: int
) -> None:
    """Five acme jobs, one each for beta and chi: at most N at once, one per org and lane;
    beta and chi start before acme's second job."""
    jobs = [_job(n, "acme", "a") for n in range(1, 6)]
    jobs += [_job(6, "beta", "b"), _job(7, "chi", "c")]
    fake = FakeJobs()
    outcomes, _ = await _run(monkeypatch, jobs, fake, concurrency, tmp_path)
    assert [o.state for o in outcomes] == ["done"] * 7
    assert fake.peak == min(concurrency, 3)
    assert fake.order.index(6) < fake.order.index(2)
    assert fake.order.index(7) < fake.order.index(2)


async def test_a_failing_and_a_crashing_job_stop_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """beta aborts (3) and chi hits a bug (70): each stops alone, its org's next job skipped;
    acme finishes; the run exits 3 and says what happened to each."""
    jobs = [_job(1, "acme", "a"), _job(2, "beta", "b"), _job(3, "chi", "c")]
    jobs += [_job(4, "beta", "b"), _job(5, "acme", "a")]
    fake = FakeJobs(
        {"beta": errors.AuthenticationFailed("the token was revoked"), "chi": KeyError("x")}
    )
    outcomes, shown = await _run(monkeypatch, jobs, fake, 4, tmp_path)
    assert [(o.label.number, o.state, o.exit_code) for o in outcomes] == [
        (1, "done", 0),
        (2, "failed", 3),
        (3, "failed", 70),
        (4, "skipped", 1),
        (5, "done", 0),
    ]
    assert overall_exit_code(outcomes, interrupted=False) == 3
    assert "job 2 (beta, onboard): the token was revoked" in shown
    assert "job 3 (chi, onboard): internal error (KeyError)" in shown
    assert "job 4 (beta, onboard): skipped" in shown


async def test_a_stop_after_every_job_ended_by_itself_is_not_an_interruption(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A SIGTERM as the last job returns (its outcome decided): exit of the jobs (0), not 130
    telling the operator to run again for nothing."""
    jobs = [_job(1, "acme", "a"), _job(2, "beta", "b")]
    stop = StopControl()
    fake = FakeJobs()

    async def then_stop(job: BureauJob, **options: Any) -> RunSummary:
        summary = await fake(job, **options)
        if job.org == "beta":
            stop.request(errors.RunInterrupted("stopped by SIGTERM"))
        return summary

    fake.jobs = {job.job.job_id: job for job in jobs}
    monkeypatch.setattr(local, "run_bureau_job", then_stop)
    board = PlainBoard([job.label for job in jobs], io.StringIO())
    outcomes, interrupted = await run_local(
        jobs, env={}, state_dir=tmp_path, board=board, stop=stop, handle_signals=False
    )
    assert stop.requested
    assert [o.state for o in outcomes] == ["done", "done"]
    assert not interrupted
    assert overall_exit_code(outcomes, interrupted=interrupted) == 0
