"""Onboarding endpoints: create, validation naming the field, duplicates, masking, pagination;
and the query checks of the list endpoints (employees, payroll runs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.sim import UNLIMITED, Simulator
from flexpay_batch.sim.testing import SimClient, employee_body
from flexpay_batch.sim.validation import EmployeeInput

MakeSimulator = Callable[..., Awaitable[Simulator]]


async def test_create_employee_is_201_with_id_and_masked_personal_numbers(
    simulator: Simulator,
) -> None:
    """The response has an employee_id, money as a string, tax id and account masked to four."""
    async with SimClient(simulator) as api:
        reply = await api.post("employees", json=employee_body("ext-1"))
    assert reply.status == 201
    body = reply.json
    assert str(body["employee_id"]).startswith("emp_")
    assert body["compensation"] == {"type": "salary", "amount": "85000.00", "currency": "USD"}
    assert body["tax_id"] == "*******6789"
    assert body["bank_account"] == {"routing_number": "021000021", "account_number": "********6789"}
    assert "123-45" not in reply.text
    assert "00012345" not in reply.text


async def test_duplicate_external_id_is_409_with_the_existing_employee_id(
    simulator: Simulator,
) -> None:
    """A second create with the same external_id reports employee_exists and the first id."""
    async with SimClient(simulator) as api:
        first = await api.post("employees", json=employee_body("ext-1"))
        second = await api.post("employees", json=employee_body("ext-1", first_name="Other"))
    assert second.status == 409
    assert second.error["type"] == "conflict"
    assert second.error["code"] == "employee_exists"
    assert second.error["employee_id"] == first.json["employee_id"]
    assert simulator.effects()["employees"] == {"created": 1, "by_external_id": {"ext-1": 1}}


#: The fields the contract requires: those of the simulator's model that cannot be None.
REQUIRED = [field.name for field in dataclasses.fields(EmployeeInput) if "None" not in field.type]


@pytest.mark.parametrize("field", REQUIRED)
async def test_missing_required_field_is_422_naming_it(simulator: Simulator, field: str) -> None:
    """Leaving out any required field gives 422 validation_error with ``field`` set to it."""
    body = employee_body("ext-1")
    del body[field]
    async with SimClient(simulator) as api:
        reply = await api.post("employees", json=body)
    assert reply.status == 422
    assert reply.error["type"] == "validation_error"
    assert reply.error["field"] == field
    assert reply.error["code"] == "missing_field"


def pay(**compensation: object) -> dict[str, object]:
    """Body overrides with a compensation of ``salary``, ``USD`` and the given changes."""
    return {"compensation": {"type": "salary", "currency": "USD", **compensation}}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (pay(amount=85000.0), "compensation.amount"),
        (pay(amount="NaN"), "compensation.amount"),
        (pay(amount="1e3"), "compensation.amount"),
        (pay(amount="-5.00"), "compensation.amount"),
        (pay(amount="1.005"), "compensation.amount"),
        (pay(amount="1,234.56"), "compensation.amount"),
        (pay(amount="10", currency="usd"), "compensation.currency"),
        (pay(type="weekly", amount="10"), "compensation.type"),
        (pay(amount="10", x=1), "compensation.x"),
        ({"hire_date": "2026-02-30"}, "hire_date"),
        ({"hire_date": "03/01/2024"}, "hire_date"),
        ({"email": "not-an-email"}, "email"),
        ({"pay_group_id": "pg_daily"}, "pay_group_id"),
        ({"employment_type": "intern"}, "employment_type"),
        ({"external_id": "   "}, "external_id"),
        ({"external_id": "a\x00b"}, "external_id"),
        ({"tax_id": "12"}, "tax_id"),
        (
            {"bank_account": {"routing_number": "1", "account_number": "1234"}},
            "bank_account.routing_number",
        ),
        (
            {"bank_account": {"routing_number": "021000021", "account_number": "12"}},
            "bank_account.account_number",
        ),
        ({"nickname": "Ada"}, "nickname"),
    ],
)
async def test_malformed_field_is_422_naming_it(
    simulator: Simulator, overrides: dict[str, object], field: str
) -> None:
    """Bad money (float, NaN, exponent, negative, 3 places), dates, ids and unknown fields → 422."""
    async with SimClient(simulator) as api:
        reply = await api.post("employees", json={**employee_body("ext-1"), **overrides})
    assert reply.status == 422
    assert reply.error["field"] == field
    assert simulator.effects()["employees"]["created"] == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"{not json", "invalid_json"), (b"[1, 2]", "invalid_body"), (b"", "invalid_body")],
)
async def test_body_that_is_not_a_json_object_is_422_on_body(
    simulator: Simulator, raw: bytes, code: str
) -> None:
    """Unparseable or non-object bodies are refused with field "body"."""
    async with SimClient(simulator) as api:
        headers = {**api.auth(), "Content-Type": "application/json"}
        async with api.session.post(
            simulator.base_url + "employees", data=raw, headers=headers
        ) as r:
            body = await r.json()
            assert r.status == 422
    assert body["error"]["field"] == "body"
    assert body["error"]["code"] == code


async def test_get_employee_by_id_and_404_for_unknown(simulator: Simulator) -> None:
    """GET /employees/{id} returns the employee; an unknown id is 404 not_found."""
    async with SimClient(simulator) as api:
        created = (await api.post("employees", json=employee_body("ext-1"))).json
        found = await api.get(f"employees/{created['employee_id']}")
        missing = await api.get("employees/emp_0000000000000000")
    assert found.status == 200
    assert found.json == created
    assert missing.status == 404
    assert missing.error["type"] == "not_found"


async def test_lookup_by_external_id_returns_zero_or_one(simulator: Simulator) -> None:
    """GET /employees?external_id= finds the employee, or returns an empty page."""
    async with SimClient(simulator) as api:
        await api.post("employees", json=employee_body("ext-1"))
        hit = await api.get("employees", params={"external_id": "ext-1"})
        miss = await api.get("employees", params={"external_id": "ext-2"})
    assert [e["external_id"] for e in hit.json["data"]] == ["ext-1"]
    assert miss.json == {"data": [], "has_more": False, "next_cursor": None}


async def test_cursor_pagination_walks_every_employee_once(make_simulator: MakeSimulator) -> None:
    """Following next_cursor with limit=4 yields all 10 employees in creation order, no repeats."""
    sim = await make_simulator(limits=UNLIMITED)
    async with SimClient(sim) as api:
        for n in range(10):
            await api.post("employees", json=employee_body(f"ext-{n}"))
        seen: list[str] = []
        params = {"limit": "4"}
        pages = 0
        while True:
            page = (await api.get("employees", params=params)).json
            seen += [str(e["external_id"]) for e in page["data"]]
            pages += 1
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            params = {"limit": "4", "cursor": str(page["next_cursor"])}
    assert seen == [f"ext-{n}" for n in range(10)]
    assert pages == 3


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("employees", {"limit": "0"}, "limit"),
        ("employees", {"limit": "101"}, "limit"),
        ("employees", {"limit": "x"}, "limit"),
        ("employees", {"cursor": "garbage!"}, "cursor"),
        ("payroll_runs", {"status": "open"}, "status"),
        ("payroll_runs", {"type": "bonus"}, "type"),
        ("payroll_runs", {"period_start": "2024-13-01"}, "period_start"),
        ("payroll_runs", {"period_end": "June"}, "period_end"),
        ("payroll_runs", {"limit": "0"}, "limit"),
        ("payroll_runs", {"cursor": "nonsense"}, "cursor"),
    ],
)
async def test_bad_list_query_is_422_naming_the_parameter(
    simulator: Simulator, path: str, params: dict[str, str], field: str
) -> None:
    """A list's bad filter values, limits outside 1..100 and cursors it never issued are
    refused (422) with the parameter's name in ``field``."""
    async with SimClient(simulator) as api:
        reply = await api.get(path, params=params)
    assert reply.status == 422
    assert reply.error["field"] == field


async def test_seed_reference_data_is_listed(simulator: Simulator) -> None:
    """The documented pay groups and employment types are served."""
    async with SimClient(simulator) as api:
        groups = (await api.get("pay_groups")).json["data"]
        types = (await api.get("employment_types")).json["data"]
    assert [g["id"] for g in groups] == ["pg_weekly", "pg_biweekly", "pg_semimonthly", "pg_monthly"]
    assert [t["id"] for t in types] == ["full_time", "part_time", "contractor"]
