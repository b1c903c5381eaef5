"""The progress line's "retrying N" is rows retrying now: +1 at a row's first retry, -1 when
that row ends (it used to add one per retry and never subtract, a running total)."""

from __future__ import annotations

from typing import Any

from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.policies import RetryPolicy
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.engine.worker import RowWorker
from flexpay_batch.jobs.base import RowTask
from tests.engine.helpers import row_task


class Deltas:
    """A reporter that keeps the ``retrying`` deltas it was told."""

    def __init__(self) -> None:
        self.deltas: list[int] = []

    def retrying(self, delta: int) -> None:
        self.deltas.append(delta)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class AlwaysUnavailable:
    """A job whose every send fails as a retryable 503."""

    def __init__(self) -> None:
        self.sends = 0

    def already_done(self, task: RowTask) -> str | None:
        return None

    async def send(self, client: object, task: RowTask) -> Any:
        self.sends += 1
        raise errors.ServerError("unavailable", status=503)


async def test_a_row_that_retries_counts_once_and_is_released_when_it_ends() -> None:
    """Three attempts of one row: retrying goes +1 once, then -1 when the row fails."""
    job, reporter, summary = AlwaysUnavailable(), Deltas(), RunSummary(run_dir=None)  # type: ignore[arg-type]
    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
    api = ApiSession(object(), policy, RetryBudget())  # type: ignore[arg-type]
    worker = RowWorker(job, api, reporter, summary)  # type: ignore[arg-type]
    outcome = await worker.process(row_task(2))
    assert outcome.status is RowStatus.FAILED
    assert job.sends == 3
    assert summary.retries == 2  # report.json still counts every retry
    assert reporter.deltas == [+1, -1]
