"""A run's items: GET (paginated), PATCH and DELETE while draft, 409 once submitted, as writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate
from flexpay_batch.sim import UNLIMITED, Simulator, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES
from flexpay_batch.sim.testing import FakeClock, SimClient, employee_body, item_body, run_body

MakeSimulator = Callable[..., Awaitable[Simulator]]

_ID_FIELD = {"payroll_runs": "payroll_run_id", "employees": "employee_id", "items": "item_id"}
ITEM_FIELDS = {"item_id", "employee_id", "hours", "gross_amount", "currency", "memo"}


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> Simulator:
    """A simulator whose limits never bite, so these tests see only payroll behaviour."""
    return await make_simulator(limits=UNLIMITED)


async def _run_with_items(
    api: SimClient, grosses: list[str], clock: FakeClock | None = None
) -> tuple[str, list[str], list[str]]:
    """A draft run with one item per gross amount: (run id, employee ids, item ids).

    With ``clock``, a minute passes after each write, so small write buckets never refuse.
    """

    async def write(path: str, body: dict[str, object]) -> str:
        reply = await api.post(path, json=body)
        assert reply.status == 201
        if clock is not None:
            clock.advance(60.0)
        return str(reply.json[_ID_FIELD[path.rsplit("/", 1)[-1]]])

    run_id = await write("payroll_runs", run_body())
    employees, items = [], []
    for n, gross in enumerate(grosses):
        employees.append(await write("employees", employee_body(f"ext-{n}")))
        items.append(await write(f"payroll_runs/{run_id}/items", item_body(employees[-1], gross)))
    return run_id, employees, items


async def _submit(api: SimClient, run_id: str, count: int, total: str) -> None:
    body = {"expected_item_count": count, "expected_total": total}
    assert (await api.post(f"payroll_runs/{run_id}/submit", json=body)).status == 200


async def test_items_are_listed_in_order_over_pages(sim: Simulator) -> None:
    """GET /payroll_runs/{id}/items pages through the items with the documented fields."""
    async with SimClient(sim) as api:
        run_id, employees, items = await _run_with_items(api, ["1.00"] * 5)
        seen: list[dict[str, object]] = []
        params = {"limit": "2"}
        while True:
            page = (await api.get(f"payroll_runs/{run_id}/items", params=params)).json
            seen += page["data"]
            if page["next_cursor"] is None:
                break
            params = {**params, "cursor": str(page["next_cursor"])}
    assert [i["item_id"] for i in seen] == items
    assert [i["employee_id"] for i in seen] == employees
    assert all(set(i) >= ITEM_FIELDS for i in seen)
    assert seen[0]["gross_amount"] == "1.00"


async def test_patch_changes_hours_gross_and_memo_of_a_draft_item(sim: Simulator) -> None:
    """PATCH returns the changed item; the run's total follows; null clears hours and memo."""
    async with SimClient(sim) as api:
        run_id, (emp, _), (item_id, _) = await _run_with_items(api, ["100.00", "50.00"])
        url = f"payroll_runs/{run_id}/items/{item_id}"
        changed = await api.request(
            "PATCH", url, json={"gross_amount": "120.50", "hours": "40.00", "memo": "overtime"}
        )
        run = (await api.get(f"payroll_runs/{run_id}")).json
        cleared = await api.request("PATCH", url, json={"hours": None, "memo": None})
        listed = (await api.get(f"payroll_runs/{run_id}/items")).json["data"][0]
    assert changed.status == 200
    assert {k: changed.json[k] for k in ("item_id", "employee_id")} == {
        "item_id": item_id,
        "employee_id": emp,
    }
    assert (changed.json["gross_amount"], changed.json["hours"], changed.json["memo"]) == (
        "120.50",
        "40.00",
        "overtime",
    )
    assert (run["item_count"], run["total"]) == (2, "170.50")
    assert cleared.status == 200
    assert (listed["gross_amount"], listed["hours"], listed["memo"]) == ("120.50", None, None)


async def test_delete_removes_a_draft_item_and_the_employee_may_be_added_again(
    sim: Simulator,
) -> None:
    """DELETE is 204 with no body; count and total drop; a new item for the employee is 201."""
    async with SimClient(sim) as api:
        run_id, (emp, _), (item_id, kept) = await _run_with_items(api, ["100.00", "50.00"])
        gone = await api.request("DELETE", f"payroll_runs/{run_id}/items/{item_id}")
        run = (await api.get(f"payroll_runs/{run_id}")).json
        listed = (await api.get(f"payroll_runs/{run_id}/items")).json["data"]
        again = await api.request("DELETE", f"payroll_runs/{run_id}/items/{item_id}")
        readded = await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, "1.00"))
    assert gone.status == 204
    assert gone.text == ""
    assert (run["item_count"], run["total"]) == (1, "50.00")
    assert [i["item_id"] for i in listed] == [kept]
    assert again.status == 404
    assert readded.status == 201
    assert readded.json["item_id"] != item_id


async def test_deleting_every_item_frees_the_runs_currency(sim: Simulator) -> None:
    """The first item fixes the currency; with no items left another currency is accepted."""
    async with SimClient(sim) as api:
        run_id, (emp,), (item_id,) = await _run_with_items(api, ["1.00"])
        await api.request("DELETE", f"payroll_runs/{run_id}/items/{item_id}")
        euro = await api.post(f"payroll_runs/{run_id}/items", json=item_body(emp, currency="EUR"))
    assert euro.status == 201


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_changes_to_a_submitted_run_are_409_payroll_run_not_draft(
    sim: Simulator, method: str
) -> None:
    """Once submitted, PATCH and DELETE get 409 with the run's id and status and change nothing."""
    async with SimClient(sim) as api:
        run_id, _, (item_id,) = await _run_with_items(api, ["10.00"])
        await _submit(api, run_id, 1, "10.00")
        url = f"payroll_runs/{run_id}/items/{item_id}"
        body = {"gross_amount": "1.00"} if method == "PATCH" else None
        reply = await api.request(method, url, json=body)
        listed = (await api.get(f"payroll_runs/{run_id}/items")).json["data"]
    assert reply.status == 409
    assert reply.error["code"] == "payroll_run_not_draft"
    assert (reply.error["payroll_run_id"], reply.error["status"]) == (run_id, "submitted")
    assert [(i["item_id"], i["gross_amount"]) for i in listed] == [(item_id, "10.00")]
    assert sim.effects()["payroll_item_changes"] == {
        "patched": 0,
        "deleted": 0,
        "patched_by_run_and_employee": {},
        "deleted_by_run_and_employee": {},
    }


async def test_submit_checks_the_figures_after_changes(sim: Simulator) -> None:
    """Submit compares with the patched and trimmed run: the old figures are a mismatch."""
    async with SimClient(sim) as api:
        run_id, _, (first, second) = await _run_with_items(api, ["10.00", "20.00"])
        await api.request(
            "PATCH", f"payroll_runs/{run_id}/items/{first}", json={"gross_amount": "15.00"}
        )
        await api.request("DELETE", f"payroll_runs/{run_id}/items/{second}")
        old = {"expected_item_count": 2, "expected_total": "30.00"}
        stale = await api.post(f"payroll_runs/{run_id}/submit", json=old)
        await _submit(api, run_id, 1, "15.00")
    assert stale.status == 409
    assert stale.error["code"] == "control_totals_mismatch"
    assert (stale.error["item_count"], stale.error["total"]) == (1, "15.00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gross_amount": "12.345"}, "gross_amount"),
        ({"gross_amount": 12.5}, "gross_amount"),
        ({"gross_amount": None}, "gross_amount"),
        ({"gross_amount": "-1.00"}, "gross_amount"),
        ({"hours": "forty"}, "hours"),
        ({"memo": ""}, "memo"),
        ({"memo": "x" * 501}, "memo"),
        ({"currency": "EUR"}, "currency"),
        ({"employee_id": "emp_x"}, "employee_id"),
        ({}, "body"),
    ],
)
async def test_patch_bodies_are_validated_naming_the_field(
    sim: Simulator, body: dict[str, object], field: str
) -> None:
    """PATCH checks money, hours and memo as POST does; other fields and {} are refused."""
    async with SimClient(sim) as api:
        run_id, _, (item_id,) = await _run_with_items(api, ["10.00"])
        reply = await api.request("PATCH", f"payroll_runs/{run_id}/items/{item_id}", json=body)
    assert reply.status == 422
    assert reply.error["type"] == "validation_error"
    assert reply.error["field"] == field
    assert sim.effects()["payroll_item_changes"]["patched"] == 0


async def test_unknown_items_and_other_organisations_runs_are_404(sim: Simulator) -> None:
    """An item id of another run, an unknown one, or another org's run: 404 for every verb."""
    sim.add_token(TokenSpec("other-org", ALL_SCOPES, org_id="org_2"))
    async with SimClient(sim) as api:
        run_id, _, (item_id,) = await _run_with_items(api, ["10.00"])
        other_run = str(
            (await api.post("payroll_runs", json=run_body(type="off_cycle"))).json["payroll_run_id"]
        )
        patch = {"memo": "x"}
        replies = [
            await api.request("PATCH", f"payroll_runs/{other_run}/items/{item_id}", json=patch),
            await api.request("DELETE", f"payroll_runs/{run_id}/items/item_nothing"),
            await api.get(f"payroll_runs/{run_id}/items", token="other-org"),
            await api.request(
                "PATCH", f"payroll_runs/{run_id}/items/{item_id}", json=patch, token="other-org"
            ),
            await api.request(
                "DELETE", f"payroll_runs/{run_id}/items/{item_id}", token="other-org"
            ),
        ]
    assert [r.status for r in replies] == [404] * 5
    assert {r.error["type"] for r in replies} == {"not_found"}


async def test_item_endpoints_need_their_scopes(sim: Simulator) -> None:
    """Read-only may list items but not change them; Payroll Submitter may change them."""
    async with SimClient(sim) as api:
        run_id, _, (first, second) = await _run_with_items(api, ["1.00", "2.00"])
        listed = await api.get(f"payroll_runs/{run_id}/items", token="read-only")
        url = f"payroll_runs/{run_id}/items/{first}"
        refused = await api.request("PATCH", url, json={"memo": "m"}, token="read-only")
        patched = await api.request("PATCH", url, json={"memo": "m"}, token="payroll-submitter")
        deleted = await api.request(
            "DELETE", f"payroll_runs/{run_id}/items/{second}", token="payroll-submitter"
        )
    assert listed.status == 200
    assert refused.status == 403
    assert refused.error["required_scope"] == "write:payroll"
    assert (patched.status, deleted.status) == (200, 204)


async def test_patch_and_delete_honour_idempotency_keys(sim: Simulator) -> None:
    """A repeated PATCH or DELETE under its key replays the first answer and applies once."""
    async with SimClient(sim) as api:
        run_id, (emp, other), (item_id, second) = await _run_with_items(api, ["1.00", "2.00"])
        url = f"payroll_runs/{run_id}/items/{item_id}"
        patches = [
            await api.request("PATCH", url, json={"gross_amount": "5.00"}, key="p") for _ in "ab"
        ]
        reused = await api.request("PATCH", url, json={"gross_amount": "6.00"}, key="p")
        del_url = f"payroll_runs/{run_id}/items/{second}"
        deletes = [await api.request("DELETE", del_url, key="d") for _ in "ab"]
    assert [r.status for r in patches] == [200, 200]
    assert patches[1].headers["Idempotent-Replayed"] == "true"
    assert reused.status == 422
    assert reused.error["code"] == "idempotency_key_reused"
    assert [r.status for r in deletes] == [204, 204]
    assert deletes[1].headers["Idempotent-Replayed"] == "true"
    effects = sim.effects()
    assert effects["payroll_item_changes"] == {
        "patched": 1,
        "deleted": 1,
        "patched_by_run_and_employee": {f"{run_id}:{emp}": 1},
        "deleted_by_run_and_employee": {f"{run_id}:{other}": 1},
    }
    assert effects["by_idempotency_key"] == {"p": 1, "d": 1}


SMALL_WRITES = LimitSettings(
    read=ClassLimits(Rate(600, 60.0), 100), write=ClassLimits(Rate(30, 60.0), 2)
)


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_patch_and_delete_count_against_the_write_limit(
    make_simulator: MakeSimulator, fake_clock: FakeClock, method: str
) -> None:
    """PATCH and DELETE take from the write bucket: advertised as writes, refused with 429."""
    sim = await make_simulator(limits=SMALL_WRITES, clock=fake_clock)
    async with SimClient(sim) as api:
        run_id, _, items = await _run_with_items(api, ["1.00", "2.00", "3.00"], fake_clock)
        body = {"memo": "m"} if method == "PATCH" else None
        replies = [
            await api.request(method, f"payroll_runs/{run_id}/items/{item}", json=body)
            for item in items
        ]
        read = await api.get(f"payroll_runs/{run_id}/items")
    assert [r.status for r in replies] == [200 if method == "PATCH" else 204] * 2 + [429]
    assert [r.headers["X-RateLimit-Limit"] for r in replies] == ["30"] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["1", "0", "0"]
    assert replies[2].error["code"] == "rate_limited"
    assert read.status == 200
