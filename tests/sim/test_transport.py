"""Transport and server behaviour: TLS only, request ids, size caps, no tracebacks, restarts."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from flexpay_batch.sim import FaultConfig, Simulator, SimulatorThread
from flexpay_batch.sim.openapi import load_document
from flexpay_batch.sim.operations import ENDPOINTS
from flexpay_batch.sim.store import Store
from flexpay_batch.sim.testing import SimClient, employee_body, wait_until

MakeSimulator = Callable[..., Awaitable[Simulator]]


async def test_plain_http_to_the_port_gets_no_http_response(simulator: Simulator) -> None:
    """A plaintext HTTP request is never answered: the TLS listener drops it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    writer.write(b"GET /v1/pay_groups HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert not answer.startswith(b"HTTP/")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(simulator.base_url.replace("https://", "http://") + "pay_groups")


async def test_clients_not_trusting_the_simulators_ca_are_refused(simulator: Simulator) -> None:
    """Certificate verification stays on: the system trust store does not know the sandbox CA."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(simulator.base_url + "pay_groups")


async def test_ca_file_verifies_the_server_for_ip_and_localhost(simulator: Simulator) -> None:
    """The written CA PEM is enough to verify the server as 127.0.0.1 and as localhost."""
    context = ssl.create_default_context(cafile=str(simulator.ca_path))
    headers = {"Authorization": f"Bearer {simulator.tokens['read-only']}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for host in ("127.0.0.1", "localhost"):
            url = f"https://{host}:{simulator.port}/v1/pay_groups"
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 200


async def test_client_context_trusts_the_simulators_ca_and_nothing_else(
    simulator: Simulator,
) -> None:
    """The test clients' TLS context holds the simulator's CA alone, not the system store."""
    context = simulator.client_ssl_context()
    assert context.cert_store_stats()["x509_ca"] == 1
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    async with SimClient(simulator) as api:
        assert (await api.get("pay_groups")).status == 200


async def test_every_response_has_a_unique_request_id(simulator: Simulator) -> None:
    """200, 401, 404 (route), 405, 422 and admin answers all carry distinct X-Request-Id."""
    async with SimClient(simulator) as api:
        replies = [
            await api.get("pay_groups"),
            await api.get("pay_groups", token="bogus"),
            await api.get("no_such_route"),
            await api.request("DELETE", "employees"),
            await api.post("employees", json={}),
            await api.get("openapi.json"),
        ]
        async with api.session.get(simulator.base_url + "../_sim/effects") as resp:
            admin_id = resp.headers["X-Request-Id"]
    ids = [r.headers["X-Request-Id"] for r in replies] + [admin_id]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)
    assert replies[2].status == 404
    assert replies[2].error["request_id"] == ids[2]
    assert replies[3].status == 405


async def test_oversized_body_is_413_envelope(make_simulator: MakeSimulator) -> None:
    """A body above max_body_bytes is refused with 413 request_too_large, nothing applied."""
    sim = await make_simulator(max_body_bytes=2048)
    async with SimClient(sim) as api:
        reply = await api.post("employees", json=employee_body("e", first_name="x" * 4000))
    assert reply.status == 413
    assert reply.error["code"] == "request_too_large"
    assert sim.effects()["employees"]["created"] == 0


async def test_unexpected_errors_are_500_without_a_traceback(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash inside an operation becomes a plain 500 envelope; the cause goes to the log only."""

    def explode(*args: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Store, "create_employee", explode)
    async with SimClient(simulator) as api:
        reply = await api.post("employees", json=employee_body("e"))
    assert reply.status == 500
    assert reply.error["code"] == "internal_error"
    assert "Traceback" not in reply.text
    assert "secret internal detail" not in reply.text
    assert "secret internal detail" in caplog.text


async def test_restart_keeps_port_data_and_idempotency(simulator: Simulator) -> None:
    """stop() then start() serves on the same port with employees and keys intact."""
    port = simulator.port
    async with SimClient(simulator) as api:
        created = await api.post("employees", json=employee_body("e"), key="k")
    await simulator.restart()
    assert simulator.port == port
    async with SimClient(simulator) as api:
        found = await api.get(f"employees/{created.json['employee_id']}")
        replay = await api.post("employees", json=employee_body("e"), key="k")
    assert found.status == 200
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_stop_cancels_held_requests_and_releases_their_keys(
    make_simulator: MakeSimulator,
) -> None:
    """A restart during a slow request drops it unapplied; its key is free for the retry."""
    sim = await make_simulator(faults=FaultConfig(slow_rate=1.0, slow_seconds=30.0))
    async with SimClient(sim) as api:
        pending = asyncio.create_task(api.post("employees", json=employee_body("e"), key="k"))
        await wait_until(lambda: len(sim.state.idempotency) == 1)  # held on the server
        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 5.0
        with pytest.raises(aiohttp.ClientError):
            await pending
    sim.set_faults(FaultConfig())
    await sim.start()
    async with SimClient(sim) as api:
        retry = await api.post("employees", json=employee_body("e"), key="k")
    assert retry.status == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert sim.effects()["employees"]["created"] == 1


async def test_stopped_simulator_refuses_connections(simulator: Simulator) -> None:
    """Between stop() and start() nothing listens on the port."""
    await simulator.stop()
    async with SimClient(simulator) as api:
        with pytest.raises(aiohttp.ClientConnectorError):
            await api.get("pay_groups")
    await simulator.start()
    async with SimClient(simulator) as api:
        assert (await api.get("pay_groups")).status == 200


async def test_admin_endpoints_need_the_admin_secret(simulator: Simulator) -> None:
    """/_sim/* without or with a wrong X-Sim-Admin is 401; with it, the effects report."""
    url = simulator.base_url.removesuffix("v1/") + "_sim/effects"
    async with SimClient(simulator) as api:
        async with api.session.get(url) as resp:
            assert resp.status == 401
        async with api.session.get(url, headers={"X-Sim-Admin": "wrong"}) as resp:
            assert resp.status == 401
        report = await api.effects()
    assert set(report) == {
        "employees",
        "payroll_runs",
        "payroll_items",
        "runs_submitted",
        "payroll_runs_by_period",
        "runs_submitted_by_period",
        "payroll_item_changes",
        "by_idempotency_key",
        "requests",
        "faults",
    }


async def test_openapi_document_is_served_and_covers_every_route(simulator: Simulator) -> None:
    """GET /v1/openapi.json needs no token, is OpenAPI 3.1, and lists exactly the app's routes."""
    async with SimClient(simulator) as api:
        reply = await api.get("openapi.json", authorize=False)
    document = reply.json
    assert reply.status == 200
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [
        {"url": simulator.base_url.rstrip("/"), "description": "this simulator"}
    ]
    served = {
        (method.upper(), "/v1" + path)
        for path, item in document["paths"].items()
        for method in item
    }
    assert served == {(e.method, e.path) for e in ENDPOINTS}
    assert {k: v for k, v in document.items() if k != "servers"} == {
        k: v for k, v in load_document().items() if k != "servers"
    }


def test_simulator_thread_serves_sync_callers(simulator_thread: SimulatorThread) -> None:
    """The threaded simulator answers plain urllib and reports effects and restarts."""
    context = ssl.create_default_context(cafile=str(simulator_thread.ca_path))
    request = urllib.request.Request(  # noqa: S310  # an https URL built from base_url
        simulator_thread.base_url + "employees",
        data=json.dumps(employee_body("e")).encode(),
        headers={
            "Authorization": f"Bearer {simulator_thread.tokens['admin']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as resp:  # noqa: S310  # same URL
        assert resp.status == 201
    simulator_thread.restart()
    assert simulator_thread.effects()["employees"] == {"created": 1, "by_external_id": {"e": 1}}
