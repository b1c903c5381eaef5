"""The payroll run state machine: draft → items → submit (count and total checked) → paystubs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.sim import UNLIMITED, Simulator
from flexpay_batch.sim.testing import SimClient, employee_body, item_body, run_body

MakeSimulator = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> Simulator:
    """A simulator whose limits never bite, so these tests see only payroll behaviour."""
    return await make_simulator(limits=UNLIMITED)


async def _employees(api: SimClient, count: int) -> list[str]:
    ids = []
    for n in range(count):
        reply = await api.post("employees", json=employee_body(f"ext-{n}"))
        ids.append(str(reply.json["employee_id"]))
    return ids


async def _draft(api: SimClient) -> str:
    reply = await api.post("payroll_runs", json=run_body())
    assert reply.status == 201
    assert reply.json["status"] == "draft"
    return str(reply.json["payroll_run_id"])


async def test_full_run_lifecycle(sim: Simulator) -> None:
    """Items add up in GET /payroll_runs/{id}; submit with matching totals creates paystubs."""
    async with SimClient(sim) as api:
        employees = await _employees(api, 3)
        run_id = await _draft(api)
        for emp, gross in zip(employees, ["100.10", "200.20", "0.05"], strict=True):
            reply = await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, gross))
            assert reply.status == 201
            assert str(reply.json["item_id"]).startswith("item_")
        run = (await api.get(f"payroll_runs/{run_id}")).json
        assert (run["status"], run["item_count"], run["total"]) == ("draft", 3, "300.35")
        before = await api.get("paystubs", params={"payroll_run_id": run_id})
        assert before.json["data"] == []
        submit = {"expected_item_count": 3, "expected_total": "300.35"}
        submitted = await api.post(f"payroll_runs/{run_id}/submit", json=submit)
        stubs = await api.get("paystubs", params={"payroll_run_id": run_id}, token="read-only")
    assert submitted.status == 200
    assert submitted.json["status"] == "submitted"
    data = stubs.json["data"]
    assert sorted(s["employee_id"] for s in data) == sorted(employees)
    assert {s["gross_amount"] for s in data} == {"100.10", "200.20", "0.05"}
    assert sim.effects()["runs_submitted"] == {run_id: 1}


@pytest.mark.parametrize(("count", "total"), [(2, "300.30"), (3, "300.31"), (0, "0.00")])
async def test_submit_with_wrong_count_or_total_is_409_and_changes_nothing(
    sim: Simulator, count: int, total: str
) -> None:
    """A mismatch reports the server's count and total; the run stays draft."""
    async with SimClient(sim) as api:
        employees = await _employees(api, 3)
        run_id = await _draft(api)
        for emp in employees:
            await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, "100.10"))
        submit = {"expected_item_count": count, "expected_total": total}
        reply = await api.post(f"payroll_runs/{run_id}/submit", json=submit)
        run = (await api.get(f"payroll_runs/{run_id}")).json
    assert reply.status == 409
    assert reply.error["code"] == "control_totals_mismatch"
    assert (reply.error["item_count"], reply.error["total"]) == (3, "300.30")
    assert run["status"] == "draft"


async def test_items_and_resubmits_are_refused_once_submitted(sim: Simulator) -> None:
    """After submit the run is closed: new items and a second submit get payroll_run_not_draft."""
    async with SimClient(sim) as api:
        first, second = await _employees(api, 2)
        run_id = await _draft(api)
        await api.post(f"payroll_runs/{run_id}/items", json=item_body(first, "10.00"))
        submit = {"expected_item_count": 1, "expected_total": "10.00"}
        assert (await api.post(f"payroll_runs/{run_id}/submit", json=submit)).status == 200
        late_item = await api.post(f"payroll_runs/{run_id}/items", json=item_body(second))
        resubmit = await api.post(f"payroll_runs/{run_id}/submit", json=submit)
    for reply in (late_item, resubmit):
        assert reply.status == 409
        assert reply.error["code"] == "payroll_run_not_draft"
        assert (reply.error["payroll_run_id"], reply.error["status"]) == (run_id, "submitted")
    assert sim.effects()["runs_submitted"] == {run_id: 1}


async def test_second_item_for_the_same_employee_is_409_with_its_item_id(sim: Simulator) -> None:
    """One item per employee per run: a duplicate names the existing item."""
    async with SimClient(sim) as api:
        (emp,) = await _employees(api, 1)
        run_id = await _draft(api)
        first = await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp))
        again = await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, "1.00"))
    assert again.status == 409
    assert again.error["code"] == "item_exists"
    assert again.error["item_id"] == first.json["item_id"]


async def test_item_for_unknown_employee_is_422_and_unknown_run_is_404(sim: Simulator) -> None:
    """The body's employee must exist in the org (422 on employee_id); the run in the URL (404)."""
    async with SimClient(sim) as api:
        (emp,) = await _employees(api, 1)
        run_id = await _draft(api)
        ghost = await api.post(f"payroll_runs/{run_id}/items", json=item_body("emp_nobody"))
        no_run = await api.post("payroll_runs/run_nothing/items", json=item_body(emp))
        no_run_get = await api.get("payroll_runs/run_nothing")
        no_run_stubs = await api.get("paystubs", params={"payroll_run_id": "run_nothing"})
    assert ghost.status == 422
    assert ghost.error["field"] == "employee_id"
    assert [r.status for r in (no_run, no_run_get, no_run_stubs)] == [404, 404, 404]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("payroll_runs", run_body(period_end="2024-05-01"), "period_end"),
        ("payroll_runs", run_body(pay_group_id="pg_hourly"), "pay_group_id"),
        ("payroll_runs", run_body(pay_date="tomorrow"), "pay_date"),
        (
            "ITEMS",
            {"employee_id": "EMP", "gross_amount": "12.345", "currency": "USD"},
            "gross_amount",
        ),
        (
            "ITEMS",
            {"employee_id": "EMP", "gross_amount": "12", "currency": "USD", "hours": "x"},
            "hours",
        ),
        ("ITEMS", {"employee_id": "EMP", "currency": "USD"}, "gross_amount"),
        ("SUBMIT", {"expected_item_count": True, "expected_total": "0.00"}, "expected_item_count"),
        ("SUBMIT", {"expected_item_count": 0, "expected_total": 0}, "expected_total"),
    ],
)
async def test_payroll_bodies_are_validated_naming_the_field(
    sim: Simulator, path: str, body: dict[str, object], field: str
) -> None:
    """Run, item and submit bodies reject bad dates, money, hours and counts with 422 + field."""
    async with SimClient(sim) as api:
        (emp,) = await _employees(api, 1)
        run_id = await _draft(api)
        target = {
            "ITEMS": f"payroll_runs/{run_id}/items",
            "SUBMIT": f"payroll_runs/{run_id}/submit",
        }
        filled = {k: (emp if v == "EMP" else v) for k, v in body.items()}
        reply = await api.post(target.get(path, path), json=filled)
    assert reply.status == 422
    assert reply.error["field"] == field


async def test_items_must_share_the_runs_currency(sim: Simulator) -> None:
    """The first item fixes the run's currency; another currency is 422 on currency."""
    async with SimClient(sim) as api:
        first, second = await _employees(api, 2)
        run_id = await _draft(api)
        await api.post(f"payroll_runs/{run_id}/items", json=item_body(first))
        reply = await api.post(
            f"payroll_runs/{run_id}/items", json=item_body(second, currency="EUR")
        )
    assert reply.status == 422
    assert reply.error["field"] == "currency"


async def test_paystubs_paginate(sim: Simulator) -> None:
    """Paystubs of a 5-item run come back over pages of 2 with opaque cursors."""
    async with SimClient(sim) as api:
        employees = await _employees(api, 5)
        run_id = await _draft(api)
        for emp in employees:
            await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, "1.00"))
        submit = {"expected_item_count": 5, "expected_total": "5.00"}
        await api.post(f"payroll_runs/{run_id}/submit", json=submit)
        seen: list[str] = []
        params = {"payroll_run_id": run_id, "limit": "2"}
        while True:
            page = (await api.get("paystubs", params=params)).json
            seen += [str(s["employee_id"]) for s in page["data"]]
            if page["next_cursor"] is None:
                break
            params = {**params, "cursor": str(page["next_cursor"])}
    assert sorted(seen) == sorted(employees)
