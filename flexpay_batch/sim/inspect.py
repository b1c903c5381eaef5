"""Admin endpoints under ``/_sim/``, guarded by the ``X-Sim-Admin`` header secret.

- ``GET /_sim/effects`` → the effect ledger (shape in ``flexpay_batch.sim.effects``).
- ``POST /_sim/revoke`` ``{"token": "..."}`` → ``{"revoked": true}`` (404 if unknown).
- ``GET /_sim/faults`` / ``PUT /_sim/faults`` ``{FaultConfig fields}`` → the fault settings;
  PUT replaces them all (missing fields take their defaults) and reseeds the generator.
- ``POST /_sim/tokens`` ``{"token", "scopes": [...], "org_id"?, "expires_at"?, "name"?}`` →
  201: accept one more token (e.g. one that expires soon, or one of another organisation).

These never count as API requests, are never rate limited and never fail by injection.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from flexpay_batch.sim.config import FaultConfig, TokenSpec
from flexpay_batch.sim.jsonutil import dumps
from flexpay_batch.sim.problems import ApiProblem, validation
from flexpay_batch.sim.state import SimState
from flexpay_batch.sim.validation import json_object

AdminHandler = Callable[[web.Request], Awaitable[web.Response]]


def _ok(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(payload), content_type="application/json")


def _guard(state: SimState, handler: AdminHandler) -> AdminHandler:
    async def guarded(request: web.Request) -> web.Response:
        given = request.headers.get("X-Sim-Admin", "")
        if not hmac.compare_digest(given.encode(), state.admin_secret.encode()):
            raise ApiProblem(401, "admin_secret_required", "send the admin secret in X-Sim-Admin")
        return await handler(request)

    return guarded


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        value = json.loads(await request.read() or b"{}")
    except ValueError:
        raise validation("body", "the request body is not valid JSON", "invalid_json") from None
    return json_object(value)


def faults_from_json(body: dict[str, object]) -> FaultConfig:
    """A ``FaultConfig`` from JSON fields; 422 naming the field that does not fit."""
    names = {f.name for f in dataclasses.fields(FaultConfig)}
    for name, value in body.items():
        if name not in names:
            raise validation(name, f"unknown fault setting {name}", "unknown_field")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise validation(name, f"{name} must be a number")
    if isinstance(body.get("seed", 0), float):
        raise validation("seed", "seed must be an integer")
    try:
        return FaultConfig(**body)  # type: ignore[arg-type]  # names and types checked above
    except ValueError as exc:
        raise validation("faults", str(exc)) from None


def token_from_json(body: dict[str, object]) -> TokenSpec:
    """A ``TokenSpec`` from JSON; 422 naming the field that does not fit."""
    token, scopes = body.get("token"), body.get("scopes")
    if not isinstance(token, str) or not token:
        raise validation("token", "token must be a non-empty string")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise validation("scopes", "scopes must be a list of strings")
    org_id, expires_at, name = body.get("org_id", "org_1"), body.get("expires_at"), body.get("name")
    if not isinstance(org_id, str):
        raise validation("org_id", "org_id must be a string")
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
    ):
        raise validation("expires_at", "expires_at must be epoch seconds")
    if name is not None and not isinstance(name, str):
        raise validation("name", "name must be a string")
    expiry = None if expires_at is None else float(expires_at)
    return TokenSpec(token, frozenset(scopes), org_id, expiry, name)


def add_routes(app: web.Application, state: SimState) -> None:
    """Register the admin endpoints for ``state`` on ``app``."""

    async def effects(request: web.Request) -> web.Response:
        return _ok(state.effects.snapshot())

    async def revoke(request: web.Request) -> web.Response:
        token = (await _json_object(request)).get("token")
        if not isinstance(token, str) or not state.tokens.revoke(token):
            raise ApiProblem(404, "resource_missing", "no such token")
        return _ok({"revoked": True})

    async def get_faults(request: web.Request) -> web.Response:
        return _ok(dataclasses.asdict(state.faults.config))

    async def put_faults(request: web.Request) -> web.Response:
        state.set_faults(faults_from_json(await _json_object(request)))
        return _ok(dataclasses.asdict(state.faults.config))

    async def add_token(request: web.Request) -> web.Response:
        spec = token_from_json(await _json_object(request))
        state.add_token(spec)
        return _ok({"token": spec.token, "org_id": spec.org_id}, status=201)

    app.router.add_get("/_sim/effects", _guard(state, effects))
    app.router.add_post("/_sim/revoke", _guard(state, revoke))
    app.router.add_get("/_sim/faults", _guard(state, get_faults))
    app.router.add_put("/_sim/faults", _guard(state, put_faults))
    app.router.add_post("/_sim/tokens", _guard(state, add_token))
