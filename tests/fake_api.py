"""A FlexPay API faked with aioresponses, for tests of the client and the retry loop.

The ``mocked`` (aioresponses active) and ``client`` (a ``FlexPayClient`` for ``BASE`` whose
limiters never wait) fixtures live in ``tests/conftest.py``; this module holds what they and
the tests share: URLs, canned bodies and the contract's error envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from aioresponses import aioresponses
from yarl import URL

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate

BASE = "https://api.example.test/v1/"
TOKEN = "fps_admin_UNIT0TOKEN0c0ffee0deadbeef"
EMPLOYEES = BASE + "employees"
NGINX_429 = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
NGINX_503 = NGINX_429.replace(b"429 Too Many Requests", b"503 Service Temporarily Unavailable")
CREATED = {"employee_id": "emp_1", "external_id": "E1"}
# Huge limits and a full bucket: the limiter never makes a unit test wait on the real clock.
NO_LIMITS = LimitSettings(
    read=ClassLimits(Rate(1_000_000, 1.0), burst=1_000_000),
    write=ClassLimits(Rate(1_000_000, 1.0), burst=1_000_000),
)


def envelope(
    status: int, code: str, message: str = "refused", **extra: object
) -> dict[str, object]:
    """The contract's error envelope."""
    kind = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found",
        409: "conflict",
        422: "validation_error",
        429: "rate_limit_error",
    }.get(status, "api_error")
    error: dict[str, object] = {"type": kind, "code": code, "message": message}
    error.update({"request_id": f"req_{status}_{code}", **extra})
    return {"error": error}


class SentRequest:
    """What aiohttp >= 3.13 wants from a finished request's writer: its output size."""

    output_size = 0


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.13+ needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SentRequest())
        super().__init__(method, url, **kwargs)


def post(client: FlexPayClient, key: str = "fpb_key_1") -> Callable[[], Any]:
    """One attempt of a POST /employees with ``key``, as ``execute`` wants it."""
    return lambda: client.request(
        "POST", "employees", json_body={"external_id": "E1"}, idempotency_key=key
    )


def sent_headers(mock: aioresponses, method: str = "POST", url: str = EMPLOYEES) -> list[Any]:
    """The per-request headers of every call made to ``url``."""
    return [call.kwargs.get("headers") or {} for call in mock.requests[(method, URL(url))]]
