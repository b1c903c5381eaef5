"""Seeded fault injection: 500, 503 + Retry-After, resets, slow answers, commit-then-drop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from flexpay_batch.sim import UNLIMITED, FaultConfig, Simulator
from flexpay_batch.sim.testing import SimClient, employee_body, wait_until

MakeSimulator = Callable[..., Awaitable[Simulator]]


async def test_server_sequence_is_deterministic_for_a_seed(make_simulator: MakeSimulator) -> None:
    """Two simulators with the same seed answer the same sequential requests identically."""
    faults = FaultConfig(seed=42, error_500_rate=0.3, error_503_rate=0.3)
    sequences = []
    for _ in range(2):
        sim = await make_simulator(limits=UNLIMITED, faults=faults)
        async with SimClient(sim) as api:
            sequences.append([(await api.get("pay_groups")).status for _ in range(30)])
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 500, 503}


async def test_injected_500_is_an_api_error_envelope_without_effect(
    make_simulator: MakeSimulator,
) -> None:
    """error_500_rate=1: every request gets 500 api_error and nothing is applied."""
    sim = await make_simulator(faults=FaultConfig(error_500_rate=1.0))
    async with SimClient(sim) as api:
        reply = await api.post("employees", json=employee_body("e"), key="k")
    assert reply.status == 500
    assert reply.error["type"] == "api_error"
    assert reply.headers["X-Request-Id"] == reply.error["request_id"]
    effects = sim.effects()
    assert effects["employees"]["created"] == 0
    assert effects["faults"]["error_500"] == 1


async def test_injected_503_carries_retry_after(make_simulator: MakeSimulator) -> None:
    """error_503_rate=1: 503 with Retry-After in seconds, and the same in the envelope."""
    sim = await make_simulator(faults=FaultConfig(error_503_rate=1.0, retry_after_503=2.0))
    async with SimClient(sim) as api:
        reply = await api.get("pay_groups")
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "2"
    assert reply.error["retry_after"] == 2.0


async def _after_a_dropped_post(make_simulator: MakeSimulator, faults: FaultConfig) -> Simulator:
    """A simulator with ``faults`` whose answer to one keyed POST (key "k") was a dropped
    connection."""
    sim = await make_simulator(faults=faults)
    async with SimClient(sim) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.post("employees", json=employee_body("e"), key="k")
    return sim


async def test_reset_before_handling_drops_the_connection_and_applies_nothing(
    make_simulator: MakeSimulator,
) -> None:
    """reset_rate=1: the client sees a broken connection and no employee is created."""
    sim = await _after_a_dropped_post(make_simulator, FaultConfig(reset_rate=1.0))
    effects = sim.effects()
    assert effects["employees"]["created"] == 0
    assert effects["faults"]["reset"] == 1
    assert effects["requests"]["by_status"] == {"dropped": 1}


async def test_commit_then_drop_applies_once_and_the_retry_replays(
    make_simulator: MakeSimulator,
) -> None:
    """commit_drop_rate=1: no response, but the effect is counted; the keyed retry replays it."""
    sim = await _after_a_dropped_post(make_simulator, FaultConfig(commit_drop_rate=1.0))
    assert sim.effects()["employees"]["created"] == 1
    sim.set_faults(FaultConfig())
    async with SimClient(sim) as api:
        retry = await api.post("employees", json=employee_body("e"), key="k")
    assert retry.status == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    effects = sim.effects()
    assert effects["employees"]["by_external_id"] == {"e": 1}
    assert effects["faults"]["commit_drop"] == 1


async def test_slow_answer_outlives_the_client_timeout_but_still_applies(
    make_simulator: MakeSimulator,
) -> None:
    """slow_seconds above the client's timeout: the client times out, the effect lands anyway."""
    sim = await make_simulator(faults=FaultConfig(slow_rate=1.0, slow_seconds=0.4))
    async with SimClient(sim) as api:
        with pytest.raises(asyncio.TimeoutError):
            await api.post("employees", json=employee_body("e"), key="k", client_timeout=0.1)
        assert sim.effects()["employees"]["created"] == 0
        # The server is still holding the request: the key is in flight.
        in_flight = await api.post("employees", json=employee_body("e"), key="k")
        assert in_flight.status == 409
        await wait_until(lambda: sim.effects()["employees"]["created"] == 1)
    assert sim.effects()["employees"]["created"] == 1


async def test_faults_can_be_changed_at_runtime_through_the_admin_endpoint(
    simulator: Simulator,
) -> None:
    """PUT /_sim/faults replaces the fault settings; bad values are 422 naming the field."""
    url = simulator.base_url.removesuffix("v1/") + "_sim/faults"
    admin = {"X-Sim-Admin": simulator.admin_secret}
    async with SimClient(simulator) as api:
        async with api.session.put(url, json={"error_503_rate": 1.0}, headers=admin) as resp:
            assert resp.status == 200
        assert (await api.get("pay_groups")).status == 503
        async with api.session.put(url, json={"error_503_rate": "x"}, headers=admin) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"]["field"] == "error_503_rate"
        async with api.session.put(url, json={}, headers=admin) as resp:
            assert resp.status == 200
        assert (await api.get("pay_groups")).status == 200
