"""Idempotency keys: replay, reuse with another body, concurrent duplicates, scope and TTL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.sim import UNLIMITED, Simulator, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES
from flexpay_batch.sim.testing import (
    FakeClock,
    SimClient,
    employee_body,
    item_body,
    run_body,
    wait_until,
)

MakeSimulator = Callable[..., Awaitable[Simulator]]


async def test_same_key_same_body_replays_without_a_second_effect(simulator: Simulator) -> None:
    """The retry gets the first response byte for byte plus Idempotent-Replayed: true."""
    async with SimClient(simulator) as api:
        first = await api.post("employees", json=employee_body("ext-1"), key="k-1")
        second = await api.post("employees", json=employee_body("ext-1"), key="k-1")
    assert (first.status, second.status) == (201, 201)
    assert second.text == first.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    effects = simulator.effects()
    assert effects["employees"] == {"created": 1, "by_external_id": {"ext-1": 1}}
    assert effects["by_idempotency_key"] == {"k-1": 1}


async def test_key_order_in_the_body_does_not_matter(simulator: Simulator) -> None:
    """The fingerprint is over canonical JSON, so reordered keys still replay."""
    body = employee_body("ext-1")
    async with SimClient(simulator) as api:
        await api.post("employees", json=body, key="k-1")
        again = await api.post("employees", json=dict(reversed(body.items())), key="k-1")
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_same_key_different_body_is_422_key_reused(simulator: Simulator) -> None:
    """Reusing a key for another request is an idempotency_error, and nothing is applied."""
    async with SimClient(simulator) as api:
        await api.post("employees", json=employee_body("ext-1"), key="k-1")
        other = await api.post("employees", json=employee_body("ext-2"), key="k-1")
        other_path = await api.post("payroll_runs", json=employee_body("ext-1"), key="k-1")
    for reply in (other, other_path):
        assert reply.status == 422
        assert reply.error["type"] == "idempotency_error"
        assert reply.error["code"] == "idempotency_key_reused"
    assert simulator.effects()["employees"]["created"] == 1


async def test_concurrent_same_key_is_409_in_progress(make_simulator: MakeSimulator) -> None:
    """While the first request is still being processed, a duplicate gets 409 and no effect."""
    sim = await make_simulator(latency=0.3)
    async with SimClient(sim) as api:
        first = asyncio.create_task(api.post("employees", json=employee_body("e"), key="k"))
        await wait_until(lambda: len(sim.state.idempotency) == 1)  # first one has reserved
        duplicate = await api.post("employees", json=employee_body("e"), key="k")
        original = await first
        later = await api.post("employees", json=employee_body("e"), key="k")
    assert duplicate.status == 409
    assert duplicate.error["code"] == "idempotency_in_progress"
    assert original.status == 201
    assert later.headers["Idempotent-Replayed"] == "true"
    assert sim.effects()["employees"]["created"] == 1


async def test_error_answers_are_replayed_too(simulator: Simulator) -> None:
    """A 409 employee_exists under a key is stored: the retry sees the same 409, replayed."""
    async with SimClient(simulator) as api:
        await api.post("employees", json=employee_body("ext-1"))
        first = await api.post("employees", json=employee_body("ext-1"), key="k-2")
        again = await api.post("employees", json=employee_body("ext-1"), key="k-2")
    assert (first.status, again.status) == (409, 409)
    assert again.text == first.text
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_keys_are_scoped_per_organisation(simulator: Simulator) -> None:
    """The same key in another organisation is a fresh request there."""
    simulator.add_token(TokenSpec("other-org", ALL_SCOPES, org_id="org_2"))
    async with SimClient(simulator) as api:
        mine = await api.post("employees", json=employee_body("ext-1"), key="k")
        theirs = await api.post(
            "employees", json=employee_body("ext-1"), key="k", token="other-org"
        )
    assert (mine.status, theirs.status) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json["employee_id"] != theirs.json["employee_id"]


async def test_keys_expire_after_the_ttl(
    make_simulator: MakeSimulator, fake_clock: FakeClock
) -> None:
    """After idempotency_ttl seconds on the injected clock the key is forgotten."""
    sim = await make_simulator(limits=UNLIMITED, clock=fake_clock, idempotency_ttl=60.0)
    body = run_body(type="off_cycle")  # two regular runs of one period would be refused
    async with SimClient(sim) as api:
        (await api.post("payroll_runs", json=body, key="k"))
        fake_clock.advance(59.0)
        replay = await api.post("payroll_runs", json=body, key="k")
        fake_clock.advance(1.0)
        fresh = await api.post("payroll_runs", json=body, key="k")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in fresh.headers
    assert sim.effects()["payroll_runs"] == {"created": 2}


async def test_every_write_endpoint_honours_keys(make_simulator: MakeSimulator) -> None:
    """Runs, items and submits replay under their key, each applied once."""
    sim = await make_simulator(limits=UNLIMITED)
    async with SimClient(sim) as api:
        emp = (await api.post("employees", json=employee_body("e"))).json["employee_id"]
        for _ in range(2):
            run = await api.post("payroll_runs", json=run_body(), key="run")
        run_id = run.json["payroll_run_id"]
        for _ in range(2):
            await api.post(
                f"payroll_runs/{run_id}/items", json=item_body(str(emp), "5.00"), key="i"
            )
        submit = {"expected_item_count": 1, "expected_total": "5.00"}
        replies = [
            await api.post(f"payroll_runs/{run_id}/submit", json=submit, key="s") for _ in range(2)
        ]
    assert [r.status for r in replies] == [200, 200]
    effects = sim.effects()
    assert effects["by_idempotency_key"] == {"run": 1, "i": 1, "s": 1}
    assert effects["payroll_items"] == {"added": 1, "by_run_and_employee": {f"{run_id}:{emp}": 1}}


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
async def test_malformed_key_is_422_on_the_header(simulator: Simulator, key: str) -> None:
    """Keys must be 1-255 visible ASCII characters."""
    async with SimClient(simulator) as api:
        reply = await api.post(
            "employees", json=employee_body("e"), headers={"Idempotency-Key": key}
        )
    assert reply.status == 422
    assert reply.error["field"] == "Idempotency-Key"
