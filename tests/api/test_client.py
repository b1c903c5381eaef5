"""FlexPayClient, one attempt at a time, against aioresponses (no network, no real server).

Each test drives ``client.request`` once and checks what the client promises about one
attempt: how each status maps to an exception, what the limiter is told, which headers go
out, and that no exception ever carries the bearer token. Retrying the client's errors is
tests/api/test_executor.py's subject.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from flexpay_batch.api.client import (
    MAX_RESPONSE_BYTES,
    ApiResponse,
    FlexPayClient,
    _read_capped,
    error_for,
)
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import EndpointClass
from tests.fake_api import (
    BASE,
    CREATED,
    EMPLOYEES,
    NGINX_429,
    NO_LIMITS,
    TOKEN,
    envelope,
    post,
)


def _created(mocked: aioresponses, headers: dict[str, str]) -> None:
    """The next POST /employees is answered 201 with ``CREATED`` and ``headers``."""
    mocked.post(EMPLOYEES, status=201, payload=CREATED, headers=headers)


# ── status → exception ─────────────────────────────────────────────────────────────────


async def test_created_reply_is_returned_with_request_id_and_replay_flag(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A 201 comes back as an ApiResponse carrying body, X-Request-Id and Idempotent-Replayed."""
    _created(mocked, {"X-Request-Id": "req_a", "Idempotent-Replayed": "true"})
    reply = await post(client)()
    assert isinstance(reply, ApiResponse)
    assert (reply.status, reply.body, reply.request_id, reply.replayed) == (
        201,
        CREATED,
        "req_a",
        True,
    )


@pytest.mark.parametrize(
    ("status", "body", "expected", "field"),
    [
        (422, envelope(422, "invalid_field", field="email"), errors.ValidationFailed, "email"),
        (404, envelope(404, "pay_group_not_found"), errors.NotFound, None),
        (409, envelope(409, "employee_exists", employee_id="emp_9"), errors.Conflict, None),
        (
            422,
            envelope(422, "idempotency_key_reused", field="Idempotency-Key"),
            errors.ValidationFailed,
            "Idempotency-Key",
        ),
        (400, envelope(400, "bad_request"), errors.RowRejected, None),
    ],
)
async def test_client_errors_become_row_rejections_with_field_code_and_request_id(
    client: FlexPayClient,
    mocked: aioresponses,
    status: int,
    body: dict[str, Any],
    expected: type[errors.RowRejected],
    field: str | None,
) -> None:
    """A 4xx other than 401/403/429 is a RowRejected subclass keeping field, code, request id."""
    mocked.post(EMPLOYEES, status=status, payload=body)
    with pytest.raises(errors.RowRejected) as caught:
        await post(client)()
    err = caught.value
    assert type(err) is expected
    info = body["error"]
    assert (err.status, err.code, err.field, err.request_id) == (
        status,
        info["code"],
        field,
        info["request_id"],
    )
    assert err.message == "refused"
    assert not isinstance(err, errors.RetryableError)


async def test_conflict_keeps_the_existing_id_in_details(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """409 employee_exists keeps the server's employee_id so the row can count as done."""
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "employee_exists", employee_id="e9"))
    with pytest.raises(errors.Conflict) as caught:
        await post(client)()
    assert caught.value.details["employee_id"] == "e9"


async def test_request_id_falls_back_to_the_header(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """Without request_id in the envelope, X-Request-Id is kept on the exception."""
    body = {"error": {"code": "invalid_field", "message": "bad", "field": "email"}}
    mocked.post(EMPLOYEES, status=422, payload=body, headers={"X-Request-Id": "req_hdr"})
    with pytest.raises(errors.ValidationFailed) as caught:
        await post(client)()
    assert caught.value.request_id == "req_hdr"


async def test_redirects_are_not_followed(client: FlexPayClient, mocked: aioresponses) -> None:
    """A 302 is refused as UnexpectedResponse; the Location (another origin) is never visited."""
    mocked.post(EMPLOYEES, status=302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(errors.UnexpectedResponse) as caught:
        await post(client)()
    assert "redirect" in str(caught.value)
    assert list(mocked.requests) == [("POST", URL(EMPLOYEES))]


async def test_a_2xx_without_a_json_object_is_unexpected(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A 200 with an HTML body (a captive portal, a wrong base URL) is not taken as success."""
    mocked.post(EMPLOYEES, status=200, body=b"<html>hello</html>", content_type="text/html")
    with pytest.raises(errors.UnexpectedResponse):
        await post(client)()


async def test_declared_oversized_response_is_refused(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A Content-Length above MAX_RESPONSE_BYTES is refused before the body is read."""
    _created(mocked, {"Content-Length": str(MAX_RESPONSE_BYTES + 1)})
    with pytest.raises(errors.ResponseTooLarge) as caught:
        await post(client)()
    assert str(MAX_RESPONSE_BYTES) in str(caught.value)


async def test_undeclared_oversized_response_is_cut_off() -> None:
    """A chunked body is read to at most MAX_RESPONSE_BYTES + 1 bytes, then refused."""

    class Stream:
        def __init__(self) -> None:
            self.asked: list[int] = []

        async def read(self, n: int) -> bytes:
            self.asked.append(n)
            return b"x" * n

    class Response:
        status = 200
        content_length = None
        content = Stream()
        headers: ClassVar[dict[str, str]] = {}

    response = Response()
    with pytest.raises(errors.ResponseTooLarge):
        await _read_capped(response, MAX_RESPONSE_BYTES)  # type: ignore[arg-type]
    assert sum(response.content.asked) == MAX_RESPONSE_BYTES + 1


# ── throttling and transport failures ──────────────────────────────────────────────────────────


async def test_bare_nginx_429_is_throttling_not_a_rejection(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """An HTML 429 with no headers is RateLimited (no retry_after) and lowers the write rate."""
    mocked.post(EMPLOYEES, status=429, body=NGINX_429, content_type="text/html")
    before = client.limiters.for_class(EndpointClass.WRITE).statistics().current_rate
    with pytest.raises(errors.RateLimited) as caught:
        await post(client)()
    assert caught.value.retry_after is None
    assert caught.value.status == 429
    after = client.limiters.for_class(EndpointClass.WRITE).statistics()
    assert after.throttled == 1
    assert after.current_rate == pytest.approx(before / 2)


async def test_transport_errors_tell_sent_from_never_sent(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A refused connection is determinate (never applied); a mid-request drop or a timeout is
    indeterminate; both are retryable TransportErrors."""
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("api.example.test", 443, True, True, None, None, None)
    mocked.post(
        EMPLOYEES,
        exception=aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
    )
    mocked.post(EMPLOYEES, exception=aiohttp.ServerDisconnectedError())
    mocked.post(EMPLOYEES, exception=TimeoutError())
    with pytest.raises(errors.TransportError) as refused:
        await post(client)()
    with pytest.raises(errors.TransportError) as dropped:
        await post(client)()
    with pytest.raises(errors.TransportError) as timed_out:
        await post(client)()
    assert not refused.value.indeterminate
    assert "refused" in str(refused.value)
    assert dropped.value.indeterminate
    assert not dropped.value.timeout
    assert timed_out.value.indeterminate
    assert timed_out.value.timeout
    assert timed_out.value.code == "timeout"


# ── configuration and secrets ────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "url",
    [
        "http://api.flexpay.dev/v1/",
        "HTTP://api.flexpay.dev/v1/",
        "ftp://api.flexpay.dev/v1/",
        "api.flexpay.dev/v1/",
        "https:///v1/",
        "https://user:pw@api.flexpay.dev/v1/",
    ],
)
def test_non_https_base_urls_are_refused(url: str) -> None:
    """Only https:// URLs with a host and no credentials are accepted, before any I/O."""
    with pytest.raises(errors.ConfigError) as caught:
        FlexPayClient(url, TOKEN)
    assert caught.value.exit_code == 2


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    """A named CA bundle that does not exist is refused (never replaced by no verification)."""
    with pytest.raises(errors.ConfigError):
        FlexPayClient(BASE, TOKEN, ca_bundle=tmp_path / "nope.pem")


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "line\n"])
def test_blank_or_spaced_tokens_are_refused_without_echoing_them(token: str) -> None:
    """An empty or white-space token is a ConfigError whose message does not contain it."""
    with pytest.raises(errors.ConfigError) as caught:
        FlexPayClient(BASE, token)
    if token.strip():
        assert token.strip() not in str(caught.value)


async def test_token_goes_out_only_as_the_authorization_header(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The bearer token travels in the Authorization header and nowhere else in the request."""
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    await post(client)()
    (call,) = mocked.requests[("POST", URL(EMPLOYEES))]
    headers = dict(call.kwargs["headers"])
    assert headers.pop("Authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in repr(headers)
    assert TOKEN not in repr({k: v for k, v in call.kwargs.items() if k != "headers"})


async def test_token_is_in_no_exception_text(mocked: aioresponses) -> None:
    """Every error the client raises, even when a hostile server echoes the Authorization
    header back in its message, fields and details, has no token in str, repr or args."""
    limiters = LimiterSet(NO_LIMITS, start="full")
    echo = f"Bearer {TOKEN}"

    def echo_back(url: URL, **kwargs: Any) -> CallbackResult:
        return CallbackResult(
            status=echo_back.status,  # type: ignore[attr-defined]
            payload=envelope(
                echo_back.status,  # type: ignore[attr-defined]
                f"bad {TOKEN}",
                f"you sent Authorization: {echo}",
                field=TOKEN,
                request_id=f"req {TOKEN}",
                required_scope=TOKEN,
                employee_id=TOKEN,
            ),
            headers={"X-Request-Id": TOKEN, "Retry-After": "1"},
        )

    seen: list[BaseException] = []
    async with FlexPayClient(BASE, TOKEN, limiters=limiters) as client:
        for status in (400, 401, 403, 404, 409, 422, 429, 500, 503, 302):
            echo_back.status = status  # type: ignore[attr-defined]
            mocked.post(EMPLOYEES, callback=echo_back)
            with pytest.raises(errors.FlexPayBatchError) as caught:
                await post(client)()
            seen.append(caught.value)
        mocked.post(EMPLOYEES, exception=aiohttp.ClientResponseError(None, (), message=echo))  # type: ignore[arg-type]
        with pytest.raises(errors.TransportError) as transport:
            await post(client)()
        seen.append(transport.value)
    for exc in seen:
        texts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
        for text in texts:
            assert TOKEN not in text, (type(exc).__name__, text)


def test_error_for_maps_every_status_class() -> None:
    """error_for is total: any status with any (or no) body gives an ApiError subclass."""
    for status in (*range(300, 309), *range(400, 432), *range(500, 512)):
        for body in (None, {}, {"error": "text"}, envelope(status, "x")):
            err = error_for(status, body, request_id="req", retry_after=None)
            assert isinstance(err, errors.ApiError)
            assert err.status == status
            if status in (429, 500, 502, 503, 504):
                assert isinstance(err, errors.RetryableError)
            if status in (401, 403) or 300 <= status < 400:
                assert isinstance(err, errors.RunAborted)


def test_unbounded_server_retry_after_is_clamped() -> None:
    """An absurd retry_after in the envelope is clamped to an hour, never trusted as is."""
    body = envelope(429, "rate_limited", retry_after=1e12)
    err = error_for(429, body, request_id=None, retry_after=None)
    assert isinstance(err, errors.RateLimited)
    assert err.retry_after == 3600.0
    assert json.dumps(err.details)  # details stay plain JSON data
    assert re.fullmatch(r"req_429_rate_limited", err.request_id or "")


def _raising_from(filename: str) -> Any:
    """A ``close()`` coroutine function that fails with AttributeError inside ``filename``
    (the frame asyncio's own code would have)."""
    namespace: dict[str, Any] = {}
    source = "def abort():\n    None._abort()\n"
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  # a fixed test snippet

    async def close() -> None:
        namespace["abort"]()

    return close


@pytest.mark.parametrize(
    ("filename", "swallowed"),
    [
        ("/usr/lib/python3.11/asyncio/sslproto.py", True),
        ("/work/somewhere/else.py", False),
    ],
)
async def test_closing_survives_cpython_3_11_2s_tls_abort_bug(
    filename: str, swallowed: bool
) -> None:
    """CPython <= 3.11.2 (Debian 12) fails inside asyncio's sslproto when the session aborts a
    TLS connection whose server went away: that is not the run's failure. Any other error
    while closing still is."""
    client = FlexPayClient(BASE, TOKEN)
    session = (await client.__aenter__())._session
    assert session is not None
    await session.close()  # the real one; then the failing one in its place
    session.close = _raising_from(filename)  # type: ignore[method-assign]
    if swallowed:
        await client.__aexit__(None, None, None)
    else:
        with pytest.raises(AttributeError):
            await client.__aexit__(None, None, None)
    assert client._session is None
