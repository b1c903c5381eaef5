"""One organisation's payroll runs: the draft → submitted state machine and its items.

Rules (contract "Payroll runs: one regular run per pay group and period"):

- A run is ``regular`` (the default) or ``off_cycle``. One regular run per pay group and
  period (``period_start``, ``period_end``), draft or submitted: a second one is 409
  ``payroll_run_exists`` carrying the existing run's ``payroll_run_id`` and ``status``.
  Off-cycle runs are never refused for that reason.
- Items are added, changed (``hours``, ``gross_amount``, ``memo``) and removed only while the
  run is a draft; any change to a submitted run is 409 ``payroll_run_not_draft`` (with the
  run's ``payroll_run_id`` and ``status``). One item per employee per run: a second is 409
  ``item_exists`` with the existing ``item_id``. The first item fixes the run's currency
  (forgotten again when the last item is removed).
- Submit compares the client's expected item count and total with the server's (409
  ``control_totals_mismatch`` with the server's ``item_count`` and ``total`` if they differ),
  then turns the run ``submitted`` and creates one paystub per item.

Lists come in creation order with cursors that survive removals (``records.page_by_seq``).
Every committed change is reported to the ``EffectLog``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flexpay_batch.sim.effects import EffectLog
from flexpay_batch.sim.problems import ApiProblem, not_found, validation
from flexpay_batch.sim.records import money, new_id, now, page, page_by_seq
from flexpay_batch.sim.validation import ItemInput, ItemPatch, RunInput, SubmitInput


@dataclass(slots=True)
class Item:
    item_id: str
    payroll_run_id: str
    seq: int
    data: ItemInput

    def to_json(self) -> dict[str, object]:
        d = self.data
        return {
            "item_id": self.item_id,
            "payroll_run_id": self.payroll_run_id,
            "employee_id": d.employee_id,
            "gross_amount": money(d.gross_amount),
            "currency": d.currency,
            "hours": None if d.hours is None else money(d.hours),
            "memo": d.memo,
        }


@dataclass(slots=True)
class Run:
    payroll_run_id: str
    seq: int
    data: RunInput
    created_at: str
    status: str = "draft"
    currency: str | None = None
    total: Decimal = Decimal(0)
    submitted_at: str | None = None
    items: dict[str, Item] = field(default_factory=dict)  # by employee_id, in seq order
    by_item_id: dict[str, Item] = field(default_factory=dict)
    next_item_seq: int = 0
    paystubs: list[dict[str, object]] = field(default_factory=list)

    @property
    def period_key(self) -> str:
        """``pay_group_id:period_start:period_end:type``, the effect ledger's key."""
        d = self.data
        return f"{d.pay_group_id}:{d.period_start}:{d.period_end}:{d.run_type}"

    def to_json(self) -> dict[str, object]:
        d = self.data
        return {
            "payroll_run_id": self.payroll_run_id,
            "type": d.run_type,
            "status": self.status,
            "pay_group_id": d.pay_group_id,
            "period_start": d.period_start.isoformat(),
            "period_end": d.period_end.isoformat(),
            "pay_date": d.pay_date.isoformat(),
            "item_count": len(self.items),
            "total": money(self.total),
            "currency": self.currency,
            "created_at": self.created_at,
            "submitted_at": self.submitted_at,
        }


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The query of ``GET /payroll_runs``; None matches anything."""

    pay_group_id: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    status: str | None = None
    run_type: str | None = None

    def matches(self, run: Run) -> bool:
        d = run.data
        wanted = (self.pay_group_id, self.period_start, self.period_end, self.status, self.run_type)
        actual = (d.pay_group_id, d.period_start, d.period_end, run.status, d.run_type)
        return all(w is None or w == a for w, a in zip(wanted, actual, strict=True))

    def scope(self) -> str:
        """The cursor scope: a cursor only continues the list with the same filters."""
        parts = (self.pay_group_id, self.period_start, self.period_end, self.status, self.run_type)
        return "runs?" + "&".join("" if p is None else str(p) for p in parts)


_RegularKey = tuple[str, date, date]


class PayrollBook:
    """One organisation's payroll runs; every method is synchronous, hence atomic."""

    __slots__ = ("_effects", "_regular", "_runs", "_runs_in_order")

    def __init__(self, effects: EffectLog) -> None:
        self._effects = effects
        self._runs: dict[str, Run] = {}
        self._runs_in_order: list[Run] = []
        self._regular: dict[_RegularKey, Run] = {}

    def create_run(self, data: RunInput, key: str | None) -> Run:
        """A new draft run; 409 ``payroll_run_exists`` for a second regular run of a period."""
        regular = (data.pay_group_id, data.period_start, data.period_end)
        if data.run_type == "regular":
            existing = self._regular.get(regular)
            if existing is not None:
                raise ApiProblem(
                    409,
                    "payroll_run_exists",
                    "a regular payroll run for this pay group and period already exists",
                    payroll_run_id=existing.payroll_run_id,
                    status=existing.status,
                )
        run = Run(new_id("run"), len(self._runs_in_order), data, now())
        self._runs[run.payroll_run_id] = run
        self._runs_in_order.append(run)
        if data.run_type == "regular":
            self._regular[regular] = run
        self._effects.run_created(run.period_key, key)
        return run

    def run(self, run_id: str) -> Run:
        """One run, or 404."""
        run = self._runs.get(run_id)
        if run is None:
            raise not_found("payroll run")
        return run

    def list_runs(
        self, where: RunFilter, cursor: str | None, limit: int
    ) -> tuple[list[Run], str | None]:
        """A page of the runs matching ``where``, in creation order."""
        matching = [run for run in self._runs_in_order if where.matches(run)]
        return page_by_seq(matching, _seq, where.scope(), cursor, limit)

    def item(self, run_id: str, item_id: str) -> tuple[Run, Item]:
        """A run and one of its items, or 404 for either."""
        run = self.run(run_id)
        item = run.by_item_id.get(item_id)
        if item is None:
            raise not_found("payroll item")
        return run, item

    def list_items(
        self, run_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """A page of a run's items in the order they were added."""
        run = self.run(run_id)
        return page_by_seq(list(run.items.values()), _seq, f"items:{run_id}", cursor, limit)

    def add_item(
        self, run_id: str, data: ItemInput, key: str | None, employees: Container[str]
    ) -> Item:
        """Add one employee's pay to a draft run (one item per employee per run)."""
        run = self.run(run_id)
        _require_draft(run)
        if data.employee_id not in employees:
            raise validation("employee_id", "no such employee", "employee_not_found")
        existing = run.items.get(data.employee_id)
        if existing is not None:
            raise ApiProblem(
                409,
                "item_exists",
                "this run already has an item for this employee",
                item_id=existing.item_id,
            )
        _require_currency(run, data.currency)
        item = Item(new_id("item"), run_id, run.next_item_seq, data)
        run.next_item_seq += 1
        run.items[data.employee_id] = run.by_item_id[item.item_id] = item
        run.currency = data.currency
        run.total += data.gross_amount
        self._effects.item_changed("added", run_id, data.employee_id, key)
        return item

    def patch_item(self, run_id: str, item_id: str, patch: ItemPatch, key: str | None) -> Item:
        """Change an item's hours, gross amount or memo while its run is a draft."""
        run, item = self.item(run_id, item_id)
        _require_draft(run)
        changes = {name: getattr(patch, name) for name in patch.given}
        new_data = dataclasses.replace(item.data, **changes)
        run.total += new_data.gross_amount - item.data.gross_amount
        item.data = new_data
        self._effects.item_changed("patched", run_id, new_data.employee_id, key)
        return item

    def delete_item(self, run_id: str, item_id: str, key: str | None) -> None:
        """Remove an item while its run is a draft."""
        run, item = self.item(run_id, item_id)
        _require_draft(run)
        del run.items[item.data.employee_id], run.by_item_id[item_id]
        run.total -= item.data.gross_amount
        if not run.items:
            run.currency = None
        self._effects.item_changed("deleted", run_id, item.data.employee_id, key)

    def submit_run(self, run_id: str, data: SubmitInput, key: str | None) -> Run:
        """Submit a draft run whose count and total match; creates its paystubs."""
        run = self.run(run_id)
        _require_draft(run)
        if data.expected_item_count != len(run.items) or data.expected_total != run.total:
            raise ApiProblem(
                409,
                "control_totals_mismatch",
                "expected_item_count or expected_total differ from the run's items",
                item_count=len(run.items),
                total=money(run.total),
            )
        run.status = "submitted"
        run.submitted_at = now()
        run.paystubs = [_paystub(run, item) for item in run.items.values()]
        self._effects.run_submitted(run_id, run.period_key, key)
        return run

    def list_paystubs(
        self, run_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, object]], str | None]:
        """A page of a run's paystubs (none until the run is submitted)."""
        run = self.run(run_id)
        return page(run.paystubs, f"ps:{run_id}", cursor, limit)


def _seq(record: Run | Item) -> int:
    return record.seq


def _require_draft(run: Run) -> None:
    if run.status != "draft":
        raise ApiProblem(
            409,
            "payroll_run_not_draft",
            f"the payroll run is {run.status}",
            payroll_run_id=run.payroll_run_id,
            status=run.status,
        )


def _require_currency(run: Run, currency: str) -> None:
    if run.currency is not None and currency != run.currency:
        raise validation("currency", f"this run is paid in {run.currency}", "currency_mismatch")


def _paystub(run: Run, item: Item) -> dict[str, object]:
    # The sandbox withholds nothing: net equals gross, so totals reconcile trivially.
    gross = money(item.data.gross_amount)
    return {
        "paystub_id": new_id("ps"),
        "payroll_run_id": run.payroll_run_id,
        "employee_id": item.data.employee_id,
        "item_id": item.item_id,
        "pay_date": run.data.pay_date.isoformat(),
        "period_start": run.data.period_start.isoformat(),
        "period_end": run.data.period_end.isoformat(),
        "gross_amount": gross,
        "net_amount": gross,
        "currency": item.data.currency,
    }
