"""The contract's endpoints as plain functions: ``(state, call) -> (status, JSON payload)``.

Each function is synchronous, so one request's checks and effect happen atomically with
respect to every other request on the event loop. ``ENDPOINTS`` is the routing table the app
registers, with the scope each endpoint needs (contract "Endpoints"):

======  ====================================  ===============
GET     /v1/pay_groups                        read:employees
GET     /v1/employment_types                  read:employees
POST    /v1/employees                         write:employees
GET     /v1/employees                         read:employees
GET     /v1/employees/{employee_id}           read:employees
POST    /v1/payroll_runs                      write:payroll
GET     /v1/payroll_runs                      read:employees
POST    /v1/payroll_runs/{id}/items           write:payroll
GET     /v1/payroll_runs/{id}/items           read:employees
PATCH   /v1/payroll_runs/{id}/items/{item}    write:payroll
DELETE  /v1/payroll_runs/{id}/items/{item}    write:payroll
GET     /v1/payroll_runs/{id}                 read:employees
POST    /v1/payroll_runs/{id}/submit          write:payroll
GET     /v1/paystubs                          read:paystubs
======  ====================================  ===============

404 for an unknown run or item comes before complaints about the body; a write with no body to
send (DELETE) may have an empty body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flexpay_batch.sim.config import READ_EMPLOYEES, READ_PAYSTUBS, WRITE_EMPLOYEES, WRITE_PAYROLL
from flexpay_batch.sim.payroll import RunFilter
from flexpay_batch.sim.problems import validation
from flexpay_batch.sim.records import DEFAULT_PAGE, MAX_PAGE
from flexpay_batch.sim.state import SimState
from flexpay_batch.sim.store import EMPLOYMENT_TYPE_IDS, EMPLOYMENT_TYPES, PAY_GROUP_IDS, PAY_GROUPS
from flexpay_batch.sim.validation import (
    RUN_STATUSES,
    RUN_TYPES,
    Body,
    iso_date,
    parse_employee,
    parse_item,
    parse_item_patch,
    parse_run,
    parse_submit,
    reject_unknown,
)

Reply = tuple[int, Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated, admitted request as the operations see it."""

    org_id: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    body: Body
    idempotency_key: str | None


Operation = Callable[[SimState, Call], Reply]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route: method, path (aiohttp pattern under /v1), scope and operation.

    ``body_optional``: a write whose body may be empty (read as ``{}``).
    """

    method: str
    path: str
    scope: str
    operation: Operation
    body_optional: bool = False


def _listing(data: Sequence[object], next_cursor: str | None) -> Reply:
    return 200, {"data": data, "has_more": next_cursor is not None, "next_cursor": next_cursor}


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise validation("limit", f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def list_pay_groups(state: SimState, call: Call) -> Reply:
    """GET /pay_groups: the seeded pay groups (one page)."""
    return _listing(list(PAY_GROUPS), None)


def list_employment_types(state: SimState, call: Call) -> Reply:
    """GET /employment_types: the seeded employment types (one page)."""
    return _listing(list(EMPLOYMENT_TYPES), None)


def create_employee(state: SimState, call: Call) -> Reply:
    """POST /employees → 201 with the employee (masked)."""
    data = parse_employee(call.body, pay_groups=PAY_GROUP_IDS, employment_types=EMPLOYMENT_TYPE_IDS)
    employee = state.store.create_employee(call.org_id, data, call.idempotency_key)
    return 201, employee.to_json()


def list_employees(state: SimState, call: Call) -> Reply:
    """GET /employees?external_id=&cursor=&limit=: a page in creation order or a look-up."""
    employees, next_cursor = state.store.list_employees(
        call.org_id, call.query.get("external_id"), call.query.get("cursor"), _limit(call.query)
    )
    return _listing([e.to_json() for e in employees], next_cursor)


def get_employee(state: SimState, call: Call) -> Reply:
    """GET /employees/{employee_id}."""
    return 200, state.store.employee(call.org_id, call.path_params["employee_id"]).to_json()


def create_run(state: SimState, call: Call) -> Reply:
    """POST /payroll_runs → 201 draft run (409 payroll_run_exists: see ``payroll``)."""
    data = parse_run(call.body, pay_groups=PAY_GROUP_IDS)
    run = state.store.payroll(call.org_id).create_run(data, call.idempotency_key)
    return 201, run.to_json()


def _choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is not None and value not in choices:
        raise validation(name, f"{name} must be one of {', '.join(choices)}")
    return value


def _run_filter(query: Mapping[str, str]) -> RunFilter:
    return RunFilter(
        pay_group_id=query.get("pay_group_id"),
        period_start=None if query.get("period_start") is None else iso_date(query, "period_start"),
        period_end=None if query.get("period_end") is None else iso_date(query, "period_end"),
        status=_choice(query, "status", RUN_STATUSES),
        run_type=_choice(query, "type", RUN_TYPES),
    )


def list_runs(state: SimState, call: Call) -> Reply:
    """GET /payroll_runs?pay_group_id=&period_start=&period_end=&status=&type=&cursor=&limit=."""
    where = _run_filter(call.query)
    runs, next_cursor = state.store.payroll(call.org_id).list_runs(
        where, call.query.get("cursor"), _limit(call.query)
    )
    return _listing([run.to_json() for run in runs], next_cursor)


def add_item(state: SimState, call: Call) -> Reply:
    """POST /payroll_runs/{id}/items → 201 item."""
    data = parse_item(call.body)
    run_id = call.path_params["payroll_run_id"]
    employees = state.store.org(call.org_id).employees
    item = state.store.payroll(call.org_id).add_item(run_id, data, call.idempotency_key, employees)
    return 201, item.to_json()


def list_items(state: SimState, call: Call) -> Reply:
    """GET /payroll_runs/{id}/items?cursor=&limit=: the run's items in the order added."""
    items, next_cursor = state.store.payroll(call.org_id).list_items(
        call.path_params["payroll_run_id"], call.query.get("cursor"), _limit(call.query)
    )
    return _listing([item.to_json() for item in items], next_cursor)


def patch_item(state: SimState, call: Call) -> Reply:
    """PATCH /payroll_runs/{id}/items/{item_id} → 200 item (draft runs only)."""
    run_id, item_id = call.path_params["payroll_run_id"], call.path_params["item_id"]
    book = state.store.payroll(call.org_id)
    book.item(run_id, item_id)
    patch = parse_item_patch(call.body)
    return 200, book.patch_item(run_id, item_id, patch, call.idempotency_key).to_json()


def delete_item(state: SimState, call: Call) -> Reply:
    """DELETE /payroll_runs/{id}/items/{item_id} → 204 (draft runs only)."""
    run_id, item_id = call.path_params["payroll_run_id"], call.path_params["item_id"]
    book = state.store.payroll(call.org_id)
    book.item(run_id, item_id)
    reject_unknown(call.body, frozenset())
    book.delete_item(run_id, item_id, call.idempotency_key)
    return 204, {}


def get_run(state: SimState, call: Call) -> Reply:
    """GET /payroll_runs/{id}: status, item_count and total."""
    return 200, state.store.payroll(call.org_id).run(call.path_params["payroll_run_id"]).to_json()


def submit_run(state: SimState, call: Call) -> Reply:
    """POST /payroll_runs/{id}/submit → 200 submitted run."""
    run_id = call.path_params["payroll_run_id"]
    book = state.store.payroll(call.org_id)
    book.run(run_id)
    data = parse_submit(call.body)
    return 200, book.submit_run(run_id, data, call.idempotency_key).to_json()


def list_paystubs(state: SimState, call: Call) -> Reply:
    """GET /paystubs?payroll_run_id=&cursor=&limit=: paystubs of one (submitted) run."""
    run_id = call.query.get("payroll_run_id")
    if not run_id:
        raise validation("payroll_run_id", "payroll_run_id is required", "missing_field")
    stubs, next_cursor = state.store.payroll(call.org_id).list_paystubs(
        run_id, call.query.get("cursor"), _limit(call.query)
    )
    return _listing(stubs, next_cursor)


_ITEM = "/v1/payroll_runs/{payroll_run_id}/items/{item_id}"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/pay_groups", READ_EMPLOYEES, list_pay_groups),
    Endpoint("GET", "/v1/employment_types", READ_EMPLOYEES, list_employment_types),
    Endpoint("POST", "/v1/employees", WRITE_EMPLOYEES, create_employee),
    Endpoint("GET", "/v1/employees", READ_EMPLOYEES, list_employees),
    Endpoint("GET", "/v1/employees/{employee_id}", READ_EMPLOYEES, get_employee),
    Endpoint("POST", "/v1/payroll_runs", WRITE_PAYROLL, create_run),
    Endpoint("GET", "/v1/payroll_runs", READ_EMPLOYEES, list_runs),
    Endpoint("POST", "/v1/payroll_runs/{payroll_run_id}/items", WRITE_PAYROLL, add_item),
    Endpoint("GET", "/v1/payroll_runs/{payroll_run_id}/items", READ_EMPLOYEES, list_items),
    Endpoint("PATCH", _ITEM, WRITE_PAYROLL, patch_item),
    Endpoint("DELETE", _ITEM, WRITE_PAYROLL, delete_item, body_optional=True),
    Endpoint("GET", "/v1/payroll_runs/{payroll_run_id}", READ_EMPLOYEES, get_run),
    Endpoint("POST", "/v1/payroll_runs/{payroll_run_id}/submit", WRITE_PAYROLL, submit_run),
    Endpoint("GET", "/v1/paystubs", READ_PAYSTUBS, list_paystubs),
)
