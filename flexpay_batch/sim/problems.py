"""The error responses the simulator sends, as one exception type and one envelope builder.

These are server-side answers, not the engine's exceptions (``core.errors`` is what the
engine raises when it *receives* one of these). A handler raises ``ApiProblem``; the app's
middleware turns it into the contract's envelope::

    {"error": {"type": ..., "code": ..., "message": ..., "request_id": ..., <extra fields>}}

Messages never echo a request's personal values.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from flexpay_batch.sim.jsonutil import dumps

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "invalid_request_error",
    409: "conflict",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "validation_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
}


class ApiProblem(Exception):
    """An error answer: HTTP ``status``, envelope ``code`` and ``message``, extra fields.

    ``extra`` lands inside the envelope's ``error`` object (``field``, ``required_scope``,
    ``employee_id``, ``status`` of a conflicting run ...); ``headers`` are added to the
    response. The first three are positional-only so an extra field may be called ``status``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        /,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error_type = error_type or _TYPE_BY_STATUS.get(status, "api_error")
        self.headers = dict(headers or {})
        self.extra = extra


def validation(field: str, message: str, code: str = "invalid_field") -> ApiProblem:
    """422 naming the offending ``field`` (dotted path for nested fields)."""
    return ApiProblem(422, code, message, field=field)


def not_found(what: str) -> ApiProblem:
    """404 for ids that do not exist *in the caller's organisation* (never 403: no leaks)."""
    return ApiProblem(404, "resource_missing", f"no such {what}")


def problem_body(problem: ApiProblem, request_id: str) -> bytes:
    """The JSON envelope bytes for ``problem``, ``request_id`` inside."""
    error: dict[str, object] = {
        "type": problem.error_type,
        "code": problem.code,
        "message": problem.message,
        "request_id": request_id,
    }
    error.update(problem.extra)
    return dumps({"error": error})


def problem_response(problem: ApiProblem, request_id: str) -> web.Response:
    """The envelope response for ``problem`` (``X-Request-Id`` is added by the middleware)."""
    return web.Response(
        status=problem.status,
        body=problem_body(problem, request_id),
        content_type="application/json",
        headers=problem.headers,
    )
