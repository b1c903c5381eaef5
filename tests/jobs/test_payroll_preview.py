"""The payroll dry run's forecast: the real finish's rules applied to what was read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flexpay_batch.jobs.payroll_preview import DraftForecast, planned_request
from flexpay_batch.jobs.payroll_reconcile import ItemFigures

PAY = ItemFigures(Decimal("100.00"), "USD", Decimal("40"), None)
ITEM = {"item_id": "item_1", "gross_amount": "100.00", "currency": "USD", "hours": "40.00"}


@pytest.mark.parametrize(
    ("run_id", "server_item", "expected"),
    [
        (None, None, "POST /payroll_runs/{id}/items"),
        ("run_1", None, "POST /payroll_runs/run_1/items"),
        ("run_1", ITEM, None),
        ("run_1", {**ITEM, "gross_amount": "99.00"}, "PATCH /payroll_runs/run_1/items/{item_id}"),
    ],
)
def test_planned_request(
    run_id: str | None, server_item: dict[str, Any] | None, expected: str | None
) -> None:
    """A new item is a POST, an equal one nothing, a different one a PATCH."""
    assert planned_request(run_id, PAY, server_item) == expected


def _forecast(**changes: Any) -> DraftForecast:
    values: dict[str, Any] = {
        "run_name": "payroll run run_1",
        "file_items": {"emp_1": PAY},
        "server_items": {},
        "file_count": 1,
        "file_total": Decimal("100.00"),
        "all_accepted": True,
        "expected_count": None,
        "expected_total": None,
        "pay_date_problems": (),
        "submit": True,
        "prune": False,
    }
    return DraftForecast(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "incomplete", "says"),
    [
        ({}, False, "would be submitted: 1 items, total 100.00"),
        ({"submit": False}, False, "would be ready and left in draft (--no-submit)"),
        ({"expected_count": 2}, True, "expected 2 items (control), the file has 1"),
        ({"expected_total": Decimal("1")}, True, "expected total 1 (control)"),
        ({"all_accepted": False}, True, "not every row would be accepted"),
        ({"server_items": {"emp_9": PAY}}, True, "--prune deletes the items of employees"),
        ({"server_items": {"emp_9": PAY}, "prune": True}, False, "would delete 1 items"),
        ({"pay_date_problems": ("the run's pay date is X",)}, True, "pay date is X"),
    ],
)
def test_draft_forecast(changes: dict[str, Any], incomplete: bool, says: str) -> None:
    """Left in draft exactly when the real finish would leave it, saying why."""
    report = _forecast(**changes).report()
    assert report.incomplete is incomplete
    assert any(says in message for message in report.messages), report.messages
