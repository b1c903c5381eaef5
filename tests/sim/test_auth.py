"""Auth over real HTTPS: 401s, 403 with required_scope, 404 for other organisations' ids."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.sim import Simulator, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES, PRESETS
from flexpay_batch.sim.testing import SimClient, employee_body, run_body

MakeSimulator = Callable[..., Awaitable[Simulator]]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Token abc", "malformed_token"),
        ("Bearer", "malformed_token"),
        ("Bearer two words", "malformed_token"),
        ("Bearer fps_not_a_real_token", "invalid_token"),
    ],
)
async def test_missing_malformed_or_unknown_token_is_401(
    simulator: Simulator, authorization: str | None, code: str
) -> None:
    """Without a well-formed known bearer token a request gets 401, envelope and challenge."""
    headers = {} if authorization is None else {"Authorization": authorization}
    async with SimClient(simulator) as api:
        reply = await api.request("GET", "pay_groups", headers=headers, authorize=False)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.headers["X-Request-Id"] == reply.error["request_id"]
    assert reply.error["type"] == "authentication_error"
    assert reply.error["code"] == code


async def test_expired_token_is_401_token_expired(make_simulator: MakeSimulator) -> None:
    """A token whose expires_at (epoch seconds) has passed is refused; a future one works."""
    sim = await make_simulator(
        tokens=(
            TokenSpec("old", ALL_SCOPES, expires_at=time.time() - 1),
            TokenSpec("fresh", ALL_SCOPES, expires_at=time.time() + 3600),
        )
    )
    async with SimClient(sim) as api:
        expired = await api.get("pay_groups", token="old")
        fresh = await api.get("pay_groups", token="fresh")
    assert expired.status == 401
    assert expired.error["code"] == "token_expired"
    assert fresh.status == 200


async def test_revoked_token_is_401_token_revoked(simulator: Simulator) -> None:
    """Revoking through POST /_sim/revoke turns the next request into 401 token_revoked."""
    token = simulator.tokens["admin"]
    async with SimClient(simulator) as api:
        assert (await api.get("pay_groups")).status == 200
        url = simulator.base_url.removesuffix("v1/") + "_sim/revoke"
        headers = {"X-Sim-Admin": simulator.admin_secret}
        async with api.session.post(url, json={"token": token}, headers=headers) as resp:
            assert resp.status == 200
        after = await api.get("pay_groups")
    assert after.status == 401
    assert after.error["code"] == "token_revoked"


@pytest.mark.parametrize(
    ("preset", "method", "path", "scope"),
    [
        ("read-only", "POST", "employees", "write:employees"),
        ("payroll-submitter", "POST", "employees", "write:employees"),
        ("read-only", "POST", "payroll_runs", "write:payroll"),
        ("read-only", "POST", "payroll_runs/run_x/items", "write:payroll"),
        ("read-only", "POST", "payroll_runs/run_x/submit", "write:payroll"),
        ("read-only", "PATCH", "payroll_runs/run_x/items/item_x", "write:payroll"),
        ("read-only", "DELETE", "payroll_runs/run_x/items/item_x", "write:payroll"),
        ("no-scopes", "GET", "payroll_runs", "read:employees"),
        ("no-scopes", "GET", "payroll_runs/run_x/items", "read:employees"),
        ("no-scopes", "GET", "employees", "read:employees"),
        ("no-scopes", "GET", "payroll_runs/run_x", "read:employees"),
        ("no-scopes", "GET", "pay_groups", "read:employees"),
        ("no-scopes", "GET", "paystubs", "read:paystubs"),
    ],
)
async def test_token_without_the_scope_is_403_naming_it(
    make_simulator: MakeSimulator, preset: str, method: str, path: str, scope: str
) -> None:
    """Each endpoint refuses a token lacking its scope with 403 and ``required_scope``."""
    tokens = tuple(TokenSpec(name, scopes, name=name) for name, scopes in PRESETS.items())
    sim = await make_simulator(tokens=(*tokens, TokenSpec("no-scopes", frozenset())))
    async with SimClient(sim) as api:
        reply = await api.request(method, path, json={}, token=preset)
    assert reply.status == 403
    assert reply.error["type"] == "permission_error"
    assert reply.error["required_scope"] == scope
    assert "X-RateLimit-Remaining" in reply.headers


async def test_presets_grant_what_the_contract_says(simulator: Simulator) -> None:
    """Read-only reads, Payroll Submitter also writes payroll, Admin also onboards."""
    async with SimClient(simulator) as api:
        assert (await api.get("employees", token="read-only")).status == 200
        assert (await api.get("paystubs", token="read-only")).status == 422  # scope ok, no run id
        run = await api.post("payroll_runs", json=run_body(), token="payroll-submitter")
        assert run.status == 201
        onboard = await api.post("employees", json=employee_body("e1"), token="admin")
        assert onboard.status == 201


async def test_other_organisations_ids_are_404_not_403(simulator: Simulator) -> None:
    """An id that exists in another organisation is simply not found, for reads and writes."""
    simulator.add_token(TokenSpec("other-org", ALL_SCOPES, org_id="org_2"))
    async with SimClient(simulator) as api:
        employee = (await api.post("employees", json=employee_body("e1"))).json
        run = (await api.post("payroll_runs", json=run_body())).json
        run_id = run["payroll_run_id"]
        replies = [
            await api.get(f"employees/{employee['employee_id']}", token="other-org"),
            await api.get(f"payroll_runs/{run_id}", token="other-org"),
            await api.post(f"payroll_runs/{run_id}/submit", token="other-org", json={}),
            await api.get("paystubs", params={"payroll_run_id": str(run_id)}, token="other-org"),
        ]
        lookup = await api.get("employees", params={"external_id": "e1"}, token="other-org")
    assert [r.status for r in replies] == [404, 404, 404, 404]
    assert {r.error["type"] for r in replies} == {"not_found"}
    assert lookup.json["data"] == []


async def test_admin_endpoint_adds_tokens_at_runtime(simulator: Simulator) -> None:
    """POST /_sim/tokens accepts a new scoped token at once; bad specs are 422 naming the field."""
    url = simulator.base_url.removesuffix("v1/") + "_sim/tokens"
    admin = {"X-Sim-Admin": simulator.admin_secret}
    spec = {"token": "late-reader", "scopes": ["read:employees"], "org_id": "org_9"}
    async with SimClient(simulator) as api:
        async with api.session.post(url, json=spec, headers=admin) as resp:
            assert resp.status == 201
        async with api.session.post(
            url, json={"token": "x", "scopes": "all"}, headers=admin
        ) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"]["field"] == "scopes"
        reads = await api.get("employees", token="late-reader")
        writes = await api.post("payroll_runs", json=run_body(), token="late-reader")
    assert reads.status == 200
    assert writes.status == 403
