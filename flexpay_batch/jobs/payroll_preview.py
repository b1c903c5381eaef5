"""``payroll --dry-run``: what a payroll run would do, forecast from reads only.

::

    planned_request(run_id, wanted, server_item)   # "POST /payroll_runs/{id}/items", or None
    DraftForecast(...).report()                    # what finish would say, nothing sent

The real run adds or PATCHes every row, so once its rows are in, a draft run holds the file's
items plus any the file does not have; its finish then compares the figures with the
operator's controls and submits (``jobs.payroll``). Pure functions over plain values, so the
forecast is the real run's rules applied to what ``PayrollJob.prepare_read_only`` read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flexpay_batch.jobs.base import FinishReport
from flexpay_batch.jobs.payroll_reconcile import ItemFigures, RunDifference

#: How a run the dry run would create is named in a planned request.
NEW_RUN = "{id}"


def planned_request(
    run_id: str | None, wanted: ItemFigures, server_item: Mapping[str, Any] | None
) -> str | None:
    """The request a row with figures ``wanted`` becomes on run ``run_id`` (None: a run yet
    to be created), given the run's item for the same employee; None when they are equal."""
    run = run_id or NEW_RUN
    if server_item is None:
        return f"POST /payroll_runs/{run}/items"
    if ItemFigures.of_item(server_item).same_as(wanted):
        return None
    return f"PATCH /payroll_runs/{run}/items/{{item_id}}"


def new_run_sentence(period: str, *, off_cycle: bool) -> str:
    """The run-level plan when the server has no run to adopt."""
    what = "an off-cycle run" if off_cycle else "the period's regular run"
    return f"would create {what} for {period} in draft (POST /payroll_runs)"


def found_run_sentence(period: str, run: Mapping[str, Any], items: int) -> str:
    """The run-level plan when the period's regular run is on the server already."""
    run_id = run.get("payroll_run_id")
    if run.get("status", "draft") != "draft":
        return (
            f"payroll for {period} was already submitted as {run_id}: its items are compared "
            "with the file, nothing would be sent to it"
        )
    return f"would adopt the period's draft run {run_id} ({items} items) and reconcile it"


@dataclass(frozen=True, slots=True)
class DraftForecast:
    """What a payroll's finish would find on a draft run (or one it would create) once every
    row of the file is in. Amounts are Decimals; employee ids are FlexPay's."""

    #: ``payroll run run_…`` or ``the new payroll run``.
    run_name: str
    file_items: Mapping[str, ItemFigures]
    server_items: Mapping[str, ItemFigures]
    file_count: int
    file_total: Decimal
    all_accepted: bool
    expected_count: int | None
    expected_total: Decimal | None
    #: The real finish's sentences about the run's pay date (empty when it agrees).
    pay_date_problems: Sequence[str]
    submit: bool
    prune: bool

    def report(self) -> FinishReport:
        """Sentences saying what the finish would do; ``incomplete`` when the run would be
        left in draft because something differs (the real run would exit 1)."""
        messages: list[str] = []
        differences = self._control_differences()
        extra = [employee for employee in self.server_items if employee not in self.file_items]
        if extra and self.prune and self.all_accepted:
            messages.append(
                f"{self.run_name}: would delete {len(extra)} items for employees not in the "
                "file (--prune)"
            )
        elif extra and self.prune:
            differences.append("--prune deletes nothing while rows of the file are rejected")
        elif extra:
            differences += RunDifference({}, [], extra).sentences()
            differences.append("--prune deletes the items of employees not in the file")
        differences += self.pay_date_problems
        if differences:
            messages += [f"{self.run_name} would be left in draft: {d}" for d in differences]
            return FinishReport(tuple(messages), incomplete=True)
        if not self.submit:
            messages.append(f"{self.run_name} would be ready and left in draft (--no-submit)")
        else:
            messages.append(
                f"{self.run_name} would be submitted: {self.file_count} items, "
                f"total {self.file_total}"
            )
        return FinishReport(tuple(messages))

    def _control_differences(self) -> list[str]:
        found: list[str] = []
        if not self.all_accepted:
            found.append("not every row would be accepted")
        if self.expected_count is not None and self.expected_count != self.file_count:
            found.append(
                f"expected {self.expected_count} items (control), the file has {self.file_count}"
            )
        if self.expected_total is not None and self.expected_total != self.file_total:
            found.append(
                f"expected total {self.expected_total} (control), the file's is {self.file_total}"
            )
        return found


__all__ = ["NEW_RUN", "DraftForecast", "found_run_sentence", "new_run_sentence", "planned_request"]
