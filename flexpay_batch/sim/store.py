"""The simulator's data: employees, payroll runs, items and paystubs, kept per organisation.

Seed reference data, the same for every organisation (engine, samples and tests may rely on
these ids):

=================  ==========================================================
pay groups         ``pg_weekly`` (weekly), ``pg_biweekly`` (biweekly),
                   ``pg_semimonthly`` (semimonthly), ``pg_monthly`` (monthly)
employment types   ``full_time``, ``part_time``, ``contractor``
=================  ==========================================================

Ids are opaque strings with a type prefix: ``emp_``, ``run_``, ``item_``, ``ps_``. An id from
another organisation is "not found" (404), never "forbidden", so ids leak nothing. Money is
held as ``Decimal`` and written as a two-place decimal string. Responses mask ``tax_id`` and
``bank_account.account_number`` to their last four characters. Lists are cursor-paginated:
``{"data": [...], "has_more": bool, "next_cursor": str | null}``; a cursor is opaque.

A payroll run is ``draft`` until submitted: items may be added only while draft, one per
employee; submit compares the client's expected item count and total with the server's
(409 ``totals_mismatch`` if they differ), then turns the run ``submitted`` and creates one
paystub per item. Every committed change is reported to the ``EffectLog``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from flexpay_batch.sim.effects import EffectLog
from flexpay_batch.sim.problems import ApiProblem, not_found, validation
from flexpay_batch.sim.validation import EmployeeInput, ItemInput, RunInput, SubmitInput

PAY_GROUPS: tuple[dict[str, str], ...] = (
    {"id": "pg_weekly", "name": "Weekly", "pay_schedule": "weekly"},
    {"id": "pg_biweekly", "name": "Every other week", "pay_schedule": "biweekly"},
    {"id": "pg_semimonthly", "name": "Twice a month", "pay_schedule": "semimonthly"},
    {"id": "pg_monthly", "name": "Monthly", "pay_schedule": "monthly"},
)
EMPLOYMENT_TYPES: tuple[dict[str, str], ...] = (
    {"id": "full_time", "name": "Full-time employee"},
    {"id": "part_time", "name": "Part-time employee"},
    {"id": "contractor", "name": "Independent contractor"},
)
PAY_GROUP_IDS = frozenset(g["id"] for g in PAY_GROUPS)
EMPLOYMENT_TYPE_IDS = frozenset(t["id"] for t in EMPLOYMENT_TYPES)

DEFAULT_PAGE = 50
MAX_PAGE = 100

T = TypeVar("T")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def mask(value: str) -> str:
    """All but the last four characters replaced by ``*`` (personal numbers in responses)."""
    return "*" * max(0, len(value) - 4) + value[-4:]


@dataclass(slots=True)
class Employee:
    employee_id: str
    data: EmployeeInput
    created_at: str

    def to_json(self) -> dict[str, object]:
        """The public view: personal numbers masked to their last four characters."""
        d = self.data
        bank = None
        if d.bank_account is not None:
            bank = {
                "routing_number": d.bank_account.routing_number,
                "account_number": mask(d.bank_account.account_number),
            }
        return {
            "employee_id": self.employee_id,
            "external_id": d.external_id,
            "first_name": d.first_name,
            "last_name": d.last_name,
            "email": d.email,
            "hire_date": d.hire_date.isoformat(),
            "pay_group_id": d.pay_group_id,
            "employment_type": d.employment_type,
            "compensation": {
                "type": d.compensation.kind,
                "amount": _money(d.compensation.amount),
                "currency": d.compensation.currency,
            },
            "tax_id": None if d.tax_id is None else mask(d.tax_id),
            "bank_account": bank,
            "status": "active",
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class Item:
    item_id: str
    payroll_run_id: str
    data: ItemInput

    def to_json(self) -> dict[str, object]:
        d = self.data
        return {
            "item_id": self.item_id,
            "payroll_run_id": self.payroll_run_id,
            "employee_id": d.employee_id,
            "gross_amount": _money(d.gross_amount),
            "currency": d.currency,
            "hours": None if d.hours is None else _money(d.hours),
            "memo": d.memo,
        }


@dataclass(slots=True)
class Run:
    payroll_run_id: str
    data: RunInput
    created_at: str
    status: str = "draft"
    currency: str | None = None
    total: Decimal = Decimal(0)
    submitted_at: str | None = None
    items: dict[str, Item] = field(default_factory=dict)  # by employee_id
    paystubs: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        d = self.data
        return {
            "payroll_run_id": self.payroll_run_id,
            "status": self.status,
            "pay_group_id": d.pay_group_id,
            "period_start": d.period_start.isoformat(),
            "period_end": d.period_end.isoformat(),
            "pay_date": d.pay_date.isoformat(),
            "item_count": len(self.items),
            "total": _money(self.total),
            "currency": self.currency,
            "created_at": self.created_at,
            "submitted_at": self.submitted_at,
        }


@dataclass(slots=True)
class Org:
    employees: dict[str, Employee] = field(default_factory=dict)
    by_external_id: dict[str, Employee] = field(default_factory=dict)
    employee_order: list[Employee] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)


def encode_cursor(scope: str, index: int) -> str:
    """An opaque cursor for "continue at ``index`` of list ``scope``"."""
    return base64.urlsafe_b64encode(f"{scope}|{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> int:
    """The index in a cursor made for ``scope``; 422 ``cursor`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        got_scope, _, index = raw.rpartition("|")
        if got_scope == scope and index.isdigit():
            return int(index)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise validation("cursor", "cursor is not one this list returned", "invalid_cursor")


def page(
    items: Sequence[T], scope: str, cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` starting at ``cursor``, and the cursor of the next page if any."""
    start = 0 if cursor is None else decode_cursor(cursor, scope)
    chunk = list(items[start : start + limit])
    end = start + len(chunk)
    return chunk, (encode_cursor(scope, end) if end < len(items) else None)


class Store:
    """All organisations' data plus the effect ledger; synchronous, so each call is atomic."""

    __slots__ = ("_orgs", "effects")

    def __init__(self, effects: EffectLog) -> None:
        self._orgs: dict[str, Org] = {}
        self.effects = effects

    def org(self, org_id: str) -> Org:
        """The organisation's data, created empty on first use."""
        org = self._orgs.get(org_id)
        if org is None:
            org = self._orgs[org_id] = Org()
        return org

    def create_employee(self, org_id: str, data: EmployeeInput, key: str | None) -> Employee:
        """Onboard one employee; 409 ``employee_exists`` (with its id) if external_id is taken."""
        org = self.org(org_id)
        existing = org.by_external_id.get(data.external_id)
        if existing is not None:
            raise ApiProblem(
                409,
                "employee_exists",
                "an employee with this external_id already exists",
                employee_id=existing.employee_id,
            )
        employee = Employee(_new_id("emp"), data, _now())
        org.employees[employee.employee_id] = employee
        org.by_external_id[data.external_id] = employee
        org.employee_order.append(employee)
        self.effects.employee_created(data.external_id, key)
        return employee

    def employee(self, org_id: str, employee_id: str) -> Employee:
        """One employee of the organisation, or 404."""
        employee = self.org(org_id).employees.get(employee_id)
        if employee is None:
            raise not_found("employee")
        return employee

    def list_employees(
        self, org_id: str, external_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Employee], str | None]:
        """A page of employees in creation order, or the 0/1 match for ``external_id``."""
        org = self.org(org_id)
        if external_id is not None:
            match = org.by_external_id.get(external_id)
            return page([match] if match else [], f"x:{external_id}", cursor, limit)
        return page(org.employee_order, "employees", cursor, limit)

    def create_run(self, org_id: str, data: RunInput, key: str | None) -> Run:
        """A new draft payroll run."""
        run = Run(_new_id("run"), data, _now())
        self.org(org_id).runs[run.payroll_run_id] = run
        self.effects.run_created(key)
        return run

    def run(self, org_id: str, run_id: str) -> Run:
        """One payroll run of the organisation, or 404."""
        run = self.org(org_id).runs.get(run_id)
        if run is None:
            raise not_found("payroll run")
        return run

    def add_item(self, org_id: str, run_id: str, data: ItemInput, key: str | None) -> Item:
        """Add one employee's pay to a draft run (one item per employee per run)."""
        run = self.run(org_id, run_id)
        _require_draft(run)
        if data.employee_id not in self.org(org_id).employees:
            raise validation("employee_id", "no such employee", "employee_not_found")
        existing = run.items.get(data.employee_id)
        if existing is not None:
            raise ApiProblem(
                409,
                "item_exists",
                "this run already has an item for this employee",
                item_id=existing.item_id,
            )
        if run.currency is not None and data.currency != run.currency:
            raise validation("currency", f"this run is paid in {run.currency}", "currency_mismatch")
        item = Item(_new_id("item"), run_id, data)
        run.items[data.employee_id] = item
        run.currency = data.currency
        run.total += data.gross_amount
        self.effects.item_added(run_id, data.employee_id, key)
        return item

    def submit_run(self, org_id: str, run_id: str, data: SubmitInput, key: str | None) -> Run:
        """Submit a draft run whose count and total match; creates its paystubs."""
        run = self.run(org_id, run_id)
        _require_draft(run)
        if data.expected_item_count != len(run.items) or data.expected_total != run.total:
            raise ApiProblem(
                409,
                "totals_mismatch",
                "expected_item_count or expected_total differ from the run's items",
                item_count=len(run.items),
                total=_money(run.total),
            )
        run.status = "submitted"
        run.submitted_at = _now()
        run.paystubs = [_paystub(run, item) for item in run.items.values()]
        self.effects.run_submitted(run_id, key)
        return run

    def list_paystubs(
        self, org_id: str, run_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, object]], str | None]:
        """A page of a run's paystubs (none until the run is submitted)."""
        run = self.run(org_id, run_id)
        return page(run.paystubs, f"ps:{run_id}", cursor, limit)


def _require_draft(run: Run) -> None:
    if run.status != "draft":
        raise ApiProblem(
            409, "run_not_draft", f"the payroll run is {run.status}", run_status=run.status
        )


def _paystub(run: Run, item: Item) -> dict[str, object]:
    # The sandbox withholds nothing: net equals gross, so totals reconcile trivially.
    gross = _money(item.data.gross_amount)
    return {
        "paystub_id": _new_id("ps"),
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
