"""The simulator's data, kept per organisation: employees here, payroll runs in ``payroll``.

Seed reference data, the same for every organisation (engine, samples and tests may rely on
these ids):

=================  ==========================================================
pay groups         ``pg_weekly`` (weekly), ``pg_biweekly`` (biweekly),
                   ``pg_semimonthly`` (semimonthly), ``pg_monthly`` (monthly)
employment types   ``full_time``, ``part_time``, ``contractor``
=================  ==========================================================

Ids, money and pagination are described in ``records``. An id from another organisation is
"not found" (404), never "forbidden", so ids leak nothing. Responses mask ``tax_id`` and
``bank_account.account_number`` to their last four characters. The payroll state machine
(one regular run per pay group and period, drafts, items, submit) is ``payroll.PayrollBook``,
one per organisation. Every committed change is reported to the ``EffectLog``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flexpay_batch.sim.effects import EffectLog
from flexpay_batch.sim.payroll import PayrollBook
from flexpay_batch.sim.problems import ApiProblem, not_found
from flexpay_batch.sim.records import money, new_id, now, page
from flexpay_batch.sim.validation import EmployeeInput

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
                "amount": money(d.compensation.amount),
                "currency": d.compensation.currency,
            },
            "tax_id": None if d.tax_id is None else mask(d.tax_id),
            "bank_account": bank,
            "status": "active",
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class Org:
    payroll: PayrollBook
    employees: dict[str, Employee] = field(default_factory=dict)
    by_external_id: dict[str, Employee] = field(default_factory=dict)
    employee_order: list[Employee] = field(default_factory=list)


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
            org = self._orgs[org_id] = Org(payroll=PayrollBook(self.effects))
        return org

    def payroll(self, org_id: str) -> PayrollBook:
        """The organisation's payroll runs."""
        return self.org(org_id).payroll

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
        employee = Employee(new_id("emp"), data, now())
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
