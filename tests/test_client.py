"""FlexPayClient, one attempt at a time, against aioresponses (no network, no real server).

Each test drives ``client.request`` (and, where the promise is about retrying, the real
``executor.execute`` with a fake clock, a recording fake sleep and ``rng = lambda: 1.0``) and
checks what the engine promises about one request: how each status maps to an exception, what
is retried and after how long, what the limiter is told, which headers go out, and that no
exception ever carries the bearer token.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

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
from flexpay_batch.api.retry.loop import Attempts, execute
from flexpay_batch.api.retry.policy import RetryBudget, RetryPolicy
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings, Rate

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


class FakeTime:
    """A clock that only moves when the fake ``sleep`` is awaited; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _SentRequest:
    """What aiohttp >= 3.13 wants from a finished request's writer: its output size."""

    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.13+ needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses active for the test (every unmatched request raises)."""
    monkeypatch.setattr("aioresponses.core.ClientResponse", _CompatResponse)
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[FlexPayClient]:
    """A client for BASE whose limiters never wait."""
    limiters = LimiterSet(NO_LIMITS, start="full")
    async with FlexPayClient(BASE, TOKEN, limiters=limiters) as opened:
        yield opened


def post(client: FlexPayClient, key: str = "fpb_key_1") -> Callable[[], Any]:
    """One attempt of a POST /employees with ``key``, as ``execute`` wants it."""
    return lambda: client.request(
        "POST", "employees", json_body={"external_id": "E1"}, idempotency_key=key
    )


def sent_headers(mock: aioresponses, method: str = "POST", url: str = EMPLOYEES) -> list[Any]:
    """The per-request headers of every call made to ``url``."""
    return [call.kwargs.get("headers") or {} for call in mock.requests[(method, URL(url))]]


# ── status → exception ─────────────────────────────────────────────────────────────────


async def test_created_reply_is_returned_with_request_id_and_replay_flag(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A 201 comes back as an ApiResponse carrying body, X-Request-Id and Idempotent-Replayed."""
    mocked.post(
        EMPLOYEES,
        status=201,
        payload=CREATED,
        headers={"X-Request-Id": "req_a", "Idempotent-Replayed": "true"},
    )
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


@pytest.mark.parametrize(
    ("status", "expected", "text"),
    [
        (401, errors.AuthenticationFailed, "rejected the token"),
        (403, errors.PermissionDenied, "needs scope write:employees"),
    ],
)
async def test_401_and_403_abort_the_run_and_are_never_retried(
    client: FlexPayClient,
    mocked: aioresponses,
    status: int,
    expected: type[errors.RunAborted],
    text: str,
) -> None:
    """401/403 raise AuthenticationFailed/PermissionDenied at the first attempt, with no sleep."""
    body = envelope(status, "token_revoked", required_scope="write:employees")
    mocked.post(EMPLOYEES, status=status, payload=body, repeat=True)
    time = FakeTime()
    attempts = Attempts()
    budget = RetryBudget()
    with pytest.raises(expected) as caught:
        await execute(
            post(client),
            policy=RetryPolicy(),
            budget=budget,
            attempts=attempts,
            clock=time.clock,
            sleep=time.sleep,
            rng=lambda: 1.0,
        )
    assert isinstance(caught.value, errors.RunAborted)
    assert caught.value.exit_code == 3
    assert text in str(caught.value)
    assert attempts.count == 1
    assert time.sleeps == []
    assert len(mocked.requests[("POST", URL(EMPLOYEES))]) == 1
    assert budget.available == budget.capacity


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
    mocked.post(
        EMPLOYEES,
        status=201,
        payload=CREATED,
        headers={"Content-Length": str(MAX_RESPONSE_BYTES + 1)},
    )
    with pytest.raises(errors.UnexpectedResponse) as caught:
        await post(client)()
    assert str(MAX_RESPONSE_BYTES) in str(caught.value)


async def test_undeclared_oversized_response_is_cut_off() -> None:
    """A chunked body is read at most MAX_RESPONSE_BYTES + 1 bytes, then refused."""

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

    response = Response()
    with pytest.raises(errors.UnexpectedResponse):
        await _read_capped(response)  # type: ignore[arg-type]
    assert response.content.asked == [MAX_RESPONSE_BYTES + 1]


# ── retrying, with a fake clock ──────────────────────────────────────────────────────────


async def test_backoff_sequence_is_exact_with_identity_jitter(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """Five 500s then a 201: sleeps are base·2^n capped (0.5, 1, 2, 4, 4) with rng() = 1."""
    for _ in range(5):
        mocked.post(EMPLOYEES, status=500, payload=envelope(500, "internal_error"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    attempts = Attempts()
    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=4.0, deadline=300.0)
    reply = await execute(
        post(client),
        policy=policy,
        budget=RetryBudget(),
        attempts=attempts,
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    assert reply.status == 201
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert attempts.count == 6
    assert attempts.request_ids == [*(["req_500_internal_error"] * 5)]


async def test_jitter_scales_every_delay(client: FlexPayClient, mocked: aioresponses) -> None:
    """Full jitter: each delay is rng() times the capped exponential."""
    for _ in range(3):
        mocked.post(EMPLOYEES, status=502, payload=envelope(502, "bad_gateway"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    draws = iter([0.25, 0.5, 0.0])
    await execute(
        post(client),
        policy=RetryPolicy(base_delay=1.0, max_delay=20.0),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: next(draws),
    )
    assert time.sleeps == [0.25, 1.0]  # the third delay is 0: no sleep call at all


async def test_attempts_are_bounded_and_the_last_error_escapes(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A server answering 503 forever gets exactly max_attempts requests, then ServerError."""
    mocked.post(EMPLOYEES, status=503, payload=envelope(503, "unavailable"), repeat=True)
    time = FakeTime()
    with pytest.raises(errors.ServerError):
        await execute(
            post(client),
            policy=RetryPolicy(max_attempts=3, base_delay=1.0),
            budget=RetryBudget(),
            clock=time.clock,
            sleep=time.sleep,
            rng=lambda: 1.0,
        )
    assert len(mocked.requests[("POST", URL(EMPLOYEES))]) == 3
    assert time.sleeps == [1.0, 2.0]


async def test_no_retry_sleeps_past_the_row_deadline(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A retry whose wait would end past the row's deadline is not made (no pointless sleep)."""
    mocked.post(EMPLOYEES, status=503, payload=envelope(503, "unavailable"), repeat=True)
    time = FakeTime()
    with pytest.raises(errors.ServerError):
        await execute(
            post(client),
            policy=RetryPolicy(max_attempts=20, base_delay=1.0, max_delay=100.0, deadline=10.0),
            budget=RetryBudget(),
            clock=time.clock,
            sleep=time.sleep,
            rng=lambda: 1.0,
        )
    assert time.sleeps == [1.0, 2.0, 4.0]  # 7 s spent; the next 8 s wait would end at 15 s
    assert time.now <= 10.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.25", 0.25), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
async def test_retry_after_on_503_is_honoured(
    client: FlexPayClient, mocked: aioresponses, header: str, expected: float
) -> None:
    """A 503's Retry-After (seconds, fractional or a past HTTP-date) replaces the backoff."""
    mocked.post(
        EMPLOYEES,
        status=503,
        payload=envelope(503, "service_unavailable"),
        headers={"Retry-After": header},
    )
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    await execute(
        post(client),
        policy=RetryPolicy(base_delay=3.0),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    assert time.sleeps == ([expected] if expected else [])


async def test_retry_after_from_the_envelope_is_used_without_the_header(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The envelope's retry_after stands in when the header is missing."""
    mocked.post(EMPLOYEES, status=503, payload=envelope(503, "unavailable", retry_after=1.5))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    await execute(
        post(client),
        policy=RetryPolicy(base_delay=3.0),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    assert time.sleeps == [1.5]


@pytest.mark.looptime
async def test_429_is_fed_to_the_limiter_and_the_worker_does_not_sleep(
    mocked: aioresponses,
) -> None:
    """A 429 with Retry-After 5 pauses the write class in the limiter: the executor never
    sleeps itself, and the retry is sent only when the shared pause is over (loop time)."""
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []

    def answer(status: int, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        def callback(url: URL, **kwargs: Any) -> CallbackResult:
            sent_at.append(loop.time())
            return CallbackResult(status=status, payload=payload, headers=headers)

        return callback

    mocked.post(
        EMPLOYEES,
        callback=answer(429, envelope(429, "rate_limited", retry_after=5), {"Retry-After": "5"}),
    )
    mocked.post(EMPLOYEES, callback=answer(201, CREATED, {}))
    limiters = LimiterSet(NO_LIMITS, start="full")
    time = FakeTime()
    attempts = Attempts()
    budget = RetryBudget()
    async with FlexPayClient(BASE, TOKEN, limiters=limiters) as client:
        reply = await execute(
            post(client),
            policy=RetryPolicy(),
            budget=budget,
            attempts=attempts,
            clock=time.clock,
            sleep=time.sleep,
            rng=lambda: 1.0,
        )
    assert reply.status == 201
    assert time.sleeps == []
    assert (attempts.count, attempts.throttled) == (2, 1)
    stats = limiters.for_class(EndpointClass.WRITE).statistics()
    assert (stats.throttled, stats.decreases) == (1, 1)
    assert len(sent_at) == 2
    assert sent_at[1] - sent_at[0] >= 5.0


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


async def test_bare_nginx_503_is_retried_as_throttling(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """An HTML 503 (nginx's default refusal) is a ServerError the limiter counts as a throttle,
    and execute retries it with backoff until it succeeds."""
    mocked.post(EMPLOYEES, status=503, body=NGINX_503, content_type="text/html")
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    reply = await execute(
        post(client),
        policy=RetryPolicy(base_delay=0.5),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    assert reply.status == 201
    assert time.sleeps == [0.5]
    assert client.limiters.for_class(EndpointClass.WRITE).statistics().throttled == 1


async def test_idempotency_in_progress_409_is_retried(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """409 idempotency_in_progress (our earlier attempt still runs) is retried, not rejected."""
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED, headers={"Idempotent-Replayed": "true"})
    time = FakeTime()
    reply = await execute(
        post(client),
        policy=RetryPolicy(base_delay=0.5),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    assert reply.replayed
    assert time.sleeps == [0.5, 1.0]


async def test_idempotency_key_is_identical_on_every_retry(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The same Idempotency-Key goes out on every attempt, across 500, reset, 429 and 409."""
    mocked.post(EMPLOYEES, status=500, payload=envelope(500, "internal_error"))
    mocked.post(EMPLOYEES, exception=aiohttp.ServerDisconnectedError())
    mocked.post(EMPLOYEES, status=429, payload=envelope(429, "rate_limited"))
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    attempts = Attempts()
    await execute(
        post(client, key="fpb_stable_key"),
        policy=RetryPolicy(base_delay=0.01),
        budget=RetryBudget(),
        attempts=attempts,
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    keys = [headers.get("Idempotency-Key") for headers in sent_headers(mocked)]
    assert keys == ["fpb_stable_key"] * 5
    assert attempts.indeterminate  # the reset came after sending: its effect was unknown


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
