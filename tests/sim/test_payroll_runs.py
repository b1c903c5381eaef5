"""One regular run per pay group and period; off-cycle runs; GET /payroll_runs with filters
(its bad filters are refused in ``test_employees.py``, with every list endpoint's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.sim import UNLIMITED, Simulator, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES
from flexpay_batch.sim.testing import SimClient, employee_body, item_body, run_body

MakeSimulator = Callable[..., Awaitable[Simulator]]

RUN_FIELDS = {
    "payroll_run_id",
    "type",
    "status",
    "pay_group_id",
    "period_start",
    "period_end",
    "pay_date",
    "item_count",
    "total",
    "created_at",
    "submitted_at",
}


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> Simulator:
    """A simulator whose limits never bite, so these tests see only payroll behaviour."""
    return await make_simulator(limits=UNLIMITED)


async def _create(api: SimClient, **overrides: object) -> str:
    reply = await api.post("payroll_runs", json=run_body(**overrides))
    assert reply.status == 201
    return str(reply.json["payroll_run_id"])


async def _submit_one_item_run(api: SimClient, run_id: str) -> None:
    emp = (await api.post("employees", json=employee_body(f"ext-{run_id}"))).json["employee_id"]
    await api.post(f"payroll_runs/{run_id}/items", json=item_body(str(emp), "10.00"))
    submit = {"expected_item_count": 1, "expected_total": "10.00"}
    assert (await api.post(f"payroll_runs/{run_id}/submit", json=submit)).status == 200


@pytest.mark.parametrize("submitted", [False, True])
async def test_second_regular_run_of_a_period_is_409_naming_the_existing_run(
    sim: Simulator, submitted: bool
) -> None:
    """Draft or submitted, the existing regular run's id and status come back in the 409."""
    async with SimClient(sim) as api:
        first = await api.post("payroll_runs", json=run_body())
        run_id = str(first.json["payroll_run_id"])
        if submitted:
            await _submit_one_item_run(api, run_id)
        again = await api.post("payroll_runs", json=run_body(pay_date="2024-06-20"))
        explicit = await api.post("payroll_runs", json=run_body(type="regular"))
    assert first.json["type"] == "regular"
    for reply in (again, explicit):
        assert reply.status == 409
        assert reply.error["type"] == "conflict"
        assert reply.error["code"] == "payroll_run_exists"
        assert reply.error["payroll_run_id"] == run_id
        assert reply.error["status"] == ("submitted" if submitted else "draft")
    assert sim.effects()["payroll_runs"]["created"] == 1


@pytest.mark.parametrize(
    "other",
    [
        {"pay_group_id": "pg_weekly"},
        {"period_start": "2024-06-02"},
        {"period_end": "2024-06-15"},
        {"type": "off_cycle"},
    ],
)
async def test_another_pay_group_period_or_an_off_cycle_run_is_allowed(
    sim: Simulator, other: dict[str, str]
) -> None:
    """Only the same pay group, period_start and period_end of a regular run clash."""
    async with SimClient(sim) as api:
        assert (await api.post("payroll_runs", json=run_body())).status == 201
        reply = await api.post("payroll_runs", json=run_body(**other))
    assert reply.status == 201
    assert reply.json["type"] == other.get("type", "regular")


async def test_off_cycle_runs_are_never_refused_for_the_period(sim: Simulator) -> None:
    """Off-cycle runs before and after the regular one all get 201; each counts per period."""
    off_cycle = run_body(type="off_cycle")
    async with SimClient(sim) as api:
        replies = [
            await api.post("payroll_runs", json=off_cycle),
            await api.post("payroll_runs", json=run_body()),
            await api.post("payroll_runs", json=off_cycle),
        ]
    assert [r.status for r in replies] == [201, 201, 201]
    assert [r.json["type"] for r in replies] == ["off_cycle", "regular", "off_cycle"]
    assert sim.effects()["payroll_runs_by_period"] == {
        "pg_biweekly:2024-06-01:2024-06-14:off_cycle": 2,
        "pg_biweekly:2024-06-01:2024-06-14:regular": 1,
    }


async def test_replay_of_the_same_key_returns_the_original_201_not_409(sim: Simulator) -> None:
    """Idempotency comes first: the same key replays the 201; another key gets the 409."""
    async with SimClient(sim) as api:
        first = await api.post("payroll_runs", json=run_body(), key="run-k")
        replay = await api.post("payroll_runs", json=run_body(), key="run-k")
        other_key = await api.post("payroll_runs", json=run_body(), key="run-k2")
        other_replay = await api.post("payroll_runs", json=run_body(), key="run-k2")
    assert (first.status, replay.status) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == first.json
    assert other_key.status == 409
    assert other_key.error["payroll_run_id"] == first.json["payroll_run_id"]
    assert other_replay.status == 409  # a stored 409 replays too
    assert sim.effects()["by_idempotency_key"] == {"run-k": 1}


async def test_run_type_is_validated(sim: Simulator) -> None:
    """type is regular or off_cycle; anything else is 422 naming the field."""
    async with SimClient(sim) as api:
        reply = await api.post("payroll_runs", json=run_body(type="bonus"))
    assert reply.status == 422
    assert reply.error["field"] == "type"


async def test_the_rule_and_the_list_are_per_organisation(sim: Simulator) -> None:
    """Another organisation may have its own regular run of the period and sees only its runs."""
    sim.add_token(TokenSpec("other-org", ALL_SCOPES, org_id="org_2"))
    async with SimClient(sim) as api:
        mine = await api.post("payroll_runs", json=run_body())
        theirs = await api.post("payroll_runs", json=run_body(), token="other-org")
        their_list = await api.get("payroll_runs", token="other-org")
    assert (mine.status, theirs.status) == (201, 201)
    assert [r["payroll_run_id"] for r in their_list.json["data"]] == [theirs.json["payroll_run_id"]]


async def _four_runs(api: SimClient) -> dict[str, str]:
    overrides: dict[str, dict[str, str]] = {
        "submitted": {},
        "off_cycle": {"type": "off_cycle"},
        "next_period": {"period_start": "2024-06-15", "period_end": "2024-06-28"},
        "weekly": {"pay_group_id": "pg_weekly"},
    }
    ids = {name: await _create(api, **fields) for name, fields in overrides.items()}
    await _submit_one_item_run(api, ids["submitted"])
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["submitted", "off_cycle", "next_period", "weekly"]),
        ({"pay_group_id": "pg_biweekly"}, ["submitted", "off_cycle", "next_period"]),
        (
            {
                "pay_group_id": "pg_biweekly",
                "period_start": "2024-06-01",
                "period_end": "2024-06-14",
            },
            ["submitted", "off_cycle"],
        ),
        ({"period_end": "2024-06-28"}, ["next_period"]),
        ({"status": "submitted"}, ["submitted"]),
        ({"status": "draft", "type": "regular"}, ["next_period", "weekly"]),
        ({"type": "off_cycle"}, ["off_cycle"]),
        ({"pay_group_id": "pg_monthly"}, []),
    ],
)
async def test_list_filters_by_pay_group_period_status_and_type(
    sim: Simulator, query: dict[str, str], expected: list[str]
) -> None:
    """GET /payroll_runs returns the matching runs in creation order with the documented fields."""
    async with SimClient(sim) as api:
        ids = await _four_runs(api)
        reply = await api.get("payroll_runs", params=query, token="read-only")
    assert reply.status == 200
    data = reply.json["data"]
    assert [r["payroll_run_id"] for r in data] == [ids[name] for name in expected]
    assert all(set(r) >= RUN_FIELDS for r in data)
    assert reply.json["has_more"] is False


async def test_listed_run_shows_its_figures(sim: Simulator) -> None:
    """A submitted run is listed with its type, item count, total and submission time."""
    async with SimClient(sim) as api:
        ids = await _four_runs(api)
        (run,) = (await api.get("payroll_runs", params={"status": "submitted"})).json["data"]
    assert run["payroll_run_id"] == ids["submitted"]
    assert (run["type"], run["item_count"], run["total"]) == ("regular", 1, "10.00")
    assert run["submitted_at"] is not None


async def test_list_paginates_and_a_cursor_keeps_its_filters(sim: Simulator) -> None:
    """Five off-cycle runs come back over pages of 2; a cursor used with other filters is 422."""
    async with SimClient(sim) as api:
        created = [await _create(api, type="off_cycle") for _ in range(5)]
        seen: list[str] = []
        params = {"type": "off_cycle", "limit": "2"}
        pages = 0
        while True:
            page = (await api.get("payroll_runs", params=params)).json
            pages += 1
            seen += [str(r["payroll_run_id"]) for r in page["data"]]
            if page["next_cursor"] is None:
                break
            assert page["has_more"] is True
            params = {**params, "cursor": str(page["next_cursor"])}
        mixed = await api.get(
            "payroll_runs", params={"type": "regular", "cursor": params["cursor"]}
        )
    assert (seen, pages) == (created, 3)
    assert mixed.status == 422
    assert mixed.error["field"] == "cursor"


async def test_a_run_submitted_between_pages_does_not_make_the_next_page_skip(
    sim: Simulator,
) -> None:
    """Cursors hold a position in creation order, so a run leaving the filter skips nobody."""
    async with SimClient(sim) as api:
        ids = [await _create(api, period_end=f"2024-06-1{n}") for n in range(4)]
        first = (await api.get("payroll_runs", params={"status": "draft", "limit": "2"})).json
        await _submit_one_item_run(api, ids[0])
        params = {"status": "draft", "limit": "2", "cursor": str(first["next_cursor"])}
        second = (await api.get("payroll_runs", params=params)).json
    assert [r["payroll_run_id"] for r in first["data"]] == ids[:2]
    assert [r["payroll_run_id"] for r in second["data"]] == ids[2:]
    assert second["next_cursor"] is None


async def test_runs_submitted_are_counted_by_period(sim: Simulator) -> None:
    """The ledger records submits per (pay group, period, type) next to the per-run count."""
    async with SimClient(sim) as api:
        run_id = await _create(api)
        await _submit_one_item_run(api, run_id)
    effects = sim.effects()
    assert effects["runs_submitted"] == {run_id: 1}
    assert effects["runs_submitted_by_period"] == {"pg_biweekly:2024-06-01:2024-06-14:regular": 1}
    assert effects["payroll_runs_by_period"] == {"pg_biweekly:2024-06-01:2024-06-14:regular": 1}
