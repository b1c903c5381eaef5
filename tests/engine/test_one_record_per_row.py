"""One journal record per row (issue 16): a row's registration travels with its outcome.

Nothing is committed before a send (the idempotency key is a pure function of the row); the
outcome's record registers the row and settles it in one statement, leaving the same journal
row as the register-then-settle pair did. A row cut off mid-request is still registered, in
flight, so the outputs never call a possibly sent row unsent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core.policies import RetryPolicy
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.engine.worker import RowWorker, transition
from flexpay_batch.jobs.base import RowOutcome, RowTask
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Register, Transition
from tests.engine.helpers import row_task
from tests.journal.helpers import make_job


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _Hangs:
    """A job whose request never answers."""

    def already_done(self, task: RowTask) -> str | None:
        return None

    async def send(self, client: object, task: RowTask) -> Any:
        await anyio.sleep_forever()


async def test_a_row_cut_off_mid_request_is_registered_in_flight() -> None:
    """Cancelled while its request is out: ``on_abandoned`` gets its registration, in flight."""
    abandoned: list[Transition] = []
    api = ApiSession(object(), RetryPolicy(), RetryBudget())  # type: ignore[arg-type]
    worker = RowWorker(
        _Hangs(),  # type: ignore[arg-type]
        api,
        _Quiet(),  # type: ignore[arg-type]
        RunSummary(run_dir=None),  # type: ignore[arg-type]
        on_abandoned=abandoned.append,
    )
    with anyio.move_on_after(0.05):
        await worker.process(row_task(7))
    assert len(abandoned) == 1
    registered = abandoned[0]
    assert isinstance(registered, Register)
    assert (registered.row, registered.row_key, registered.idempotency_key) == (7, "rk7", "fpb_7")
    assert registered.attempt == 1
    assert registered.sent_at is not None


@pytest.mark.parametrize("known", [False, True], ids=["new row", "row left in flight"])
def test_one_record_leaves_the_row_as_register_then_done(tmp_path: Path, known: bool) -> None:
    """A sent-and-created row's one record gives the same journal row as Register + Done, for a
    row new to the journal and for one an earlier run left in flight (a resume)."""
    outcome = RowOutcome(
        3,
        RowStatus.CREATED,
        server_id="emp_3",
        request_id="req_3",
        attempts=1,
        row_key="rk3",
        body_hash="bh3",
        idempotency_key="fpb_3",
        sent_at=1000.0,
    )
    record = transition(outcome)
    assert isinstance(record, Done)
    assert record.registration is not None
    pair: list[Transition] = [
        record.registration,
        Done(row=3, server_id="emp_3", status=RowStatus.CREATED, request_id="req_3"),
    ]
    rows = []
    for name, batch in (("one", [record]), ("pair", pair)):
        with Journal.create(tmp_path / name, make_job(), wall_clock=lambda: 2000.0) as journal:
            if known:
                journal.commit_batch([record.registration])
            assert journal.commit_batch(batch) == 0
            rows.append(journal.row(3))
    one, two = rows
    assert one == two
    assert one is not None
    assert (one.status, one.attempts, one.first_sent_at) == (RowStatus.CREATED, 1, 1000.0)
    assert (one.idempotency_key, one.server_id, one.request_id) == ("fpb_3", "emp_3", "req_3")
