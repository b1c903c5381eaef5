"""The aiohttp application: one request's path through the simulator.

For an API request (everything in ``operations.ENDPOINTS``) the order is::

    fault draw → (reset | 500 | 503)? → 401 auth → 429 bucket → 403 scope → read body (413)
    → Idempotency-Key (replay | 422 reused | 409 in progress | reserve) → latency/slow
    → operation (422 / 404 / 409 / effect) → store for replay → (commit-then-drop)?

Every response carries ``X-Request-Id``; every response after the bucket carries the
``X-RateLimit-*`` headers (unless they are switched off); errors use the contract's envelope
and never contain a traceback. The hot path does no disk I/O and no logging.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.sim import inspect, openapi
from flexpay_batch.sim.auth import require_scope
from flexpay_batch.sim.buckets import Admission, format_seconds
from flexpay_batch.sim.config import TokenSpec
from flexpay_batch.sim.faults import FaultPlan, Outcome, drop_connection
from flexpay_batch.sim.idempotency import StoredResponse, check_key
from flexpay_batch.sim.jsonutil import dumps
from flexpay_batch.sim.operations import ENDPOINTS, Call, Endpoint
from flexpay_batch.sim.problems import ApiProblem, problem_body, problem_response, validation
from flexpay_batch.sim.state import SimState
from flexpay_batch.sim.validation import json_object

_log = logging.getLogger("flexpay_batch.sim")

# What nginx's limit_req answers with `limit_req_status 429`: no JSON, no rate headers.
_NGINX_429 = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_HTTP_CODES = {
    404: ("route_not_found", "no such endpoint"),
    405: ("method_not_allowed", "this endpoint does not accept that method"),
    413: ("request_too_large", "the request body is too large"),
}


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response from already-encoded ``body`` bytes (204: no body, no content type)."""
    if status == 204:
        return web.Response(status=204, headers=headers)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class _BareRateLimited(Exception):
    """Refused for rate while rate-limit headers are off: answer like nginx, not the contract."""


class _Context:
    """What one API request accumulates on its way through the pipeline."""

    __slots__ = ("dropped", "rate_headers", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.dropped = False
        self.rate_headers: dict[str, str] | None = None


def _drop(request: web.Request, ctx: _Context) -> web.Response:
    """Reset the connection; the returned response is never written (aiohttp fails quietly)."""
    drop_connection(request)
    ctx.dropped = True
    return web.Response(status=499)


def _rate_headers(state: SimState, cls: EndpointClass, admission: Admission) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": state.limit_header[cls],
        "X-RateLimit-Remaining": str(admission.remaining),
    }
    style = state.config.reset_style
    if style == "delta":
        headers["X-RateLimit-Reset"] = format_seconds(admission.reset_after, fractional=False)
    elif style == "epoch":
        epoch = time.time() + admission.reset_after
        headers["X-RateLimit-Reset"] = format_seconds(epoch, fractional=False)
    return headers


def _admit(state: SimState, ctx: _Context, spec: TokenSpec, cls: EndpointClass) -> None:
    """Take a token from the caller's bucket for ``cls`` or refuse with 429."""
    admission = state.buckets.admit(spec.token, cls)
    if not state.config.rate_limit_headers:
        if not admission.allowed:
            raise _BareRateLimited
        return
    ctx.rate_headers = _rate_headers(state, cls, admission)
    if not admission.allowed:
        fractional = state.config.fractional_retry_after
        raise ApiProblem(
            429,
            "rate_limited",
            f"{cls.value} limit of {state.limit_header[cls]} requests per minute exceeded",
            headers={"Retry-After": format_seconds(admission.retry_after, fractional=fractional)},
            retry_after=round(admission.retry_after, 3),
        )


def _fail_by_fault(state: SimState, plan: FaultPlan) -> None:
    """Raise the injected 500 or 503 of ``plan``, if it has one."""
    if plan.outcome is Outcome.ERROR_500:
        state.effects.faults[plan.outcome.value] += 1
        raise ApiProblem(500, "internal_error", "the server failed to handle the request")
    if plan.outcome is Outcome.ERROR_503:
        state.effects.faults[plan.outcome.value] += 1
        wait = state.faults.config.retry_after_503
        fractional = state.config.fractional_retry_after
        raise ApiProblem(
            503,
            "service_unavailable",
            "the service is temporarily unavailable",
            headers={"Retry-After": format_seconds(wait, fractional=fractional)},
            retry_after=wait,
        )


_INVALID = object()


async def _read_json(request: web.Request) -> tuple[object, bytes]:
    """The parsed body and its canonical bytes (the idempotency fingerprint's input)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiProblem(413, "request_too_large", "the request body is too large") from None
    if not raw:
        return None, b""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return _INVALID, raw
    return parsed, json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()


def _body(parsed: object, *, optional: bool) -> dict[str, object]:
    if parsed is None and optional:
        return {}
    if parsed is _INVALID:
        raise validation("body", "the request body is not valid JSON", "invalid_json")
    return json_object(parsed)


_INTERNAL = ApiProblem(500, "internal_error", "the server failed to handle the request")


class ApiHandler:
    """The aiohttp handler for one endpoint: runs the pipeline in the module docstring."""

    __slots__ = ("endpoint", "endpoint_class", "is_write", "state")

    def __init__(self, state: SimState, endpoint: Endpoint) -> None:
        self.state = state
        self.endpoint = endpoint
        self.endpoint_class = EndpointClass.of_method(endpoint.method)
        self.is_write = self.endpoint_class is EndpointClass.WRITE

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request (registered as the route's handler); never raises an error."""
        state = self.state
        ctx = _Context(state.next_request_id())
        try:
            response = await self._answer(request, ctx)
        except ApiProblem as problem:
            response = problem_response(problem, ctx.request_id)
        except _BareRateLimited:
            response = web.Response(status=429, body=_NGINX_429, content_type="text/html")
        except Exception:
            # The operator gets the cause in the log; the client the envelope, no traceback.
            _log.exception("unhandled error in request %s", ctx.request_id)
            response = problem_response(_INTERNAL, ctx.request_id)
        if ctx.dropped:
            state.effects.answered("dropped")
            return response
        response.headers["X-Request-Id"] = ctx.request_id
        if ctx.rate_headers is not None:
            response.headers.update(ctx.rate_headers)
        state.effects.answered(response.status)
        return response

    async def _answer(self, request: web.Request, ctx: _Context) -> web.Response:
        state = self.state
        plan = state.faults.plan()
        if plan.outcome is Outcome.RESET:
            state.effects.faults[plan.outcome.value] += 1
            return _drop(request, ctx)
        _fail_by_fault(state, plan)
        spec = state.tokens.authenticate(request.headers.get("Authorization"))
        _admit(state, ctx, spec, self.endpoint_class)
        require_scope(spec, self.endpoint.scope)
        try:
            response = await self._process(request, ctx, spec, plan)
        except ApiProblem as problem:
            response = problem_response(problem, ctx.request_id)
        if plan.outcome is Outcome.COMMIT_DROP:
            state.effects.faults[plan.outcome.value] += 1
            return _drop(request, ctx)
        return response

    async def _process(
        self, request: web.Request, ctx: _Context, spec: TokenSpec, plan: FaultPlan
    ) -> web.Response:
        parsed, canonical = await _read_json(request) if self.is_write else (None, b"")
        key = request.headers.get("Idempotency-Key") if self.is_write else None
        if key is None:
            await self._delay(plan)
            status, body = self._execute(request, ctx, spec, parsed, None)
            return json_response(status, body)
        check_key(key)
        fingerprint = hashlib.sha256(
            b"%s %s\n%s" % (request.method.encode(), request.path_qs.encode(), canonical)
        ).digest()
        stored = self.state.idempotency.begin(spec.org_id, key, fingerprint)
        if stored is not None:
            return json_response(stored.status, stored.body, {"Idempotent-Replayed": "true"})
        return await self._run_reserved(request, ctx, spec, parsed, key, plan)

    async def _run_reserved(
        self,
        request: web.Request,
        ctx: _Context,
        spec: TokenSpec,
        parsed: object,
        key: str,
        plan: FaultPlan,
    ) -> web.Response:
        """Run under a reserved key; keep the answer for replay, or release the key."""
        idempotency = self.state.idempotency
        try:
            await self._delay(plan)
            status, body = self._execute(request, ctx, spec, parsed, key)
        except BaseException:
            # Cancelled (server stopping) or crashed: no answer exists, so a retry may run.
            idempotency.abandon(spec.org_id, key)
            raise
        idempotency.finish(spec.org_id, key, StoredResponse(status, body))
        return json_response(status, body)

    def _execute(
        self,
        request: web.Request,
        ctx: _Context,
        spec: TokenSpec,
        parsed: object,
        key: str | None,
    ) -> tuple[int, bytes]:
        """Validate and apply: (status, JSON bytes), errors included as envelopes."""
        try:
            call = Call(
                org_id=spec.org_id,
                path_params=request.match_info,
                query=request.query,
                body=_body(parsed, optional=self.endpoint.body_optional) if self.is_write else {},
                idempotency_key=key,
            )
            status, payload = self.endpoint.operation(self.state, call)
        except ApiProblem as problem:
            if problem.headers:
                raise  # headers cannot be replayed; no operation sets any
            return problem.status, problem_body(problem, ctx.request_id)
        return status, (b"" if status == 204 else dumps(payload))

    async def _delay(self, plan: FaultPlan) -> None:
        delay = self.state.config.latency
        if plan.slow:
            self.state.effects.faults["slow"] += 1
            delay += self.state.faults.config.slow_seconds
        if delay > 0:
            await asyncio.sleep(delay)


def _problem_from_http(exc: web.HTTPException) -> ApiProblem:
    code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
    return ApiProblem(exc.status, code, message)


def make_middleware(state: SimState) -> Middleware:
    """Envelopes and ``X-Request-Id`` for everything the API handlers do not answer themselves.

    That is unknown routes (404), wrong methods (405), the ``/_sim/`` admin endpoints and the
    OpenAPI document. API handlers set their own request id; it is kept.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return _with_request_id(await handler(request), state.next_request_id)
        except ApiProblem as problem:
            problem_seen = problem
        except web.HTTPException as exc:
            problem_seen = _problem_from_http(exc)
        except Exception:
            problem_seen = _INTERNAL
            _log.exception("unhandled error outside the API handlers")
        request_id = state.next_request_id()
        return _with_request_id(problem_response(problem_seen, request_id), lambda: request_id)

    return middleware


def _with_request_id(response: web.StreamResponse, new_id: Callable[[], str]) -> web.StreamResponse:
    if "X-Request-Id" not in response.headers:
        response.headers["X-Request-Id"] = new_id()
    return response


def build_app(state: SimState) -> web.Application:
    """A fresh application over ``state`` (one per start; the state outlives it)."""
    app = web.Application(
        middlewares=[make_middleware(state)], client_max_size=state.config.max_body_bytes
    )
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, ApiHandler(state, endpoint).handle)
    openapi.add_routes(app)
    inspect.add_routes(app, state)
    return app
