"""The FlexPay API client: one attempt of one request, limited, authenticated, mapped to errors.

Usage::

    async with FlexPayClient(base_url, token, ca_bundle=ca) as client:
        reply = await client.request("POST", "employees", json=body, idempotency_key=key)
        print(reply.body["employee_id"])

Every request first passes its endpoint class's limiter (shared by all workers of this
token), then a concurrency cap, and every response, error or not, is fed back to that limiter.
Retrying is not done here: ``executor.execute`` owns the retry loop, so one call here is one
attempt and the caller always knows how many were made.

Security: TLS is always verified (a CA bundle may be named, verification cannot be turned
off), ``http://`` base URLs are refused, redirects are never followed (the bearer token must
not travel to another origin), and no exception raised here carries the token or request
headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from pydantic_core import from_json as _from_json

from flexpay_batch import __version__
from flexpay_batch.api.headers import RateLimitFeedback, parse_feedback
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import DEFAULT_LIMITS, EndpointClass, LimitSettings
from flexpay_batch.core.policies import Timeouts
from flexpay_batch.core.settings import MIN_TOKEN_LENGTH

#: A response body larger than this is refused: responses are untrusted input.
MAX_RESPONSE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful (2xx) reply: its JSON object body and the headers the caller may want."""

    status: int
    body: dict[str, Any]
    request_id: str | None = None
    replayed: bool = False
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Seconds from sending (after the limiter let the request through) to the full reply.
    elapsed: float = 0.0


def validate_base_url(base_url: str) -> str:
    """Return ``base_url`` with exactly one trailing slash, or raise ``ConfigError``.

    Only ``https://`` is accepted: the API rejects plain HTTP, and sending a bearer token over
    it would expose it.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise errors.ConfigError(
            f"base URL {base_url!r} is not an https:// URL",
            hint="FlexPay accepts HTTPS only; use e.g. https://api.flexpay.dev/v1/",
        )
    if parts.username or parts.password:
        raise errors.ConfigError("the base URL must not contain credentials")
    if parts.query or parts.fragment or base_url.strip().endswith(("?", "#")):
        # A query would be sent with every request and may carry a secret into server logs;
        # a fragment means the URL was pasted from somewhere else. Neither belongs here.
        raise errors.ConfigError(
            "the base URL must not contain a query string (?…) or a fragment (#…)",
            hint="Use the API's root alone, e.g. https://api.flexpay.dev/v1/",
        )
    return base_url.strip().rstrip("/") + "/"


def validate_token(token: str) -> None:
    """Raise ``ConfigError`` for a token that cannot be real or cannot be kept out of output."""
    if not token or any(ch.isspace() for ch in token):
        raise errors.ConfigError(
            "the API token is empty or contains white space",
            hint="Set FLEXPAY_TOKEN or pass --token-file with the token alone on one line.",
        )
    if len(token) < MIN_TOKEN_LENGTH or token in _SCRUBBED:
        raise errors.ConfigError(
            f"the API token is shorter than {MIN_TOKEN_LENGTH} characters, so it cannot be real",
            hint="Check FLEXPAY_TOKEN or --token-file: it should hold the whole token.",
        )


def make_ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying TLS context; with ``ca_bundle``, that file's CAs are trusted instead."""
    if ca_bundle is not None and not ca_bundle.is_file():
        raise errors.ConfigError(f"CA bundle {ca_bundle} does not exist or is not a file")
    try:
        return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except ssl.SSLError as exc:  # not PEM at all: a configuration error, not a bug (70)
        raise errors.ConfigError(
            f"CA bundle {ca_bundle} holds no usable certificate ({exc.reason or 'SSLError'})",
            hint="It should be the PEM file of the CA that signed the API's certificate.",
        ) from None


class FlexPayClient:
    """An aiohttp session bound to one base URL and one token, with its limiters."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ca_bundle: Path | None = None,
        limits: LimitSettings = DEFAULT_LIMITS,
        limiters: LimiterSet | None = None,
        max_in_flight: int = 16,
        timeouts: Timeouts | None = None,
        wall_clock: Callable[[], float] = time.time,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        validate_token(token)
        self._max_response_bytes = max_response_bytes
        self._token = token
        self._token_bytes = token.encode()
        self._ssl = make_ssl_context(ca_bundle)
        self.limiters = limiters if limiters is not None else LimiterSet(limits)
        self._max_in_flight = max_in_flight
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._timeouts = timeouts or Timeouts()
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None
        self._on_the_wire = 0
        self._wire_idle = asyncio.Event()
        self._wire_idle.set()

    @property
    def requests_on_the_wire(self) -> int:
        """Requests past the limiter and not yet fully answered (waiting ones do not count)."""
        return self._on_the_wire

    async def wait_nothing_on_the_wire(self) -> None:
        """Return once no request is being sent or answered (a stopping run may then cancel
        the workers still waiting at a limiter: they have sent nothing)."""
        await self._wire_idle.wait()

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl, limit=self._max_in_flight, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=self._timeouts.total,
            sock_connect=self._timeouts.connect,
            sock_read=self._timeouts.read,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {self._token}",
                "User-Agent": f"flexpay-batch/{__version__}",
                "Accept": "application/json",
            },
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                await session.close()
            except AttributeError as exc:
                if not _is_sslproto_abort_bug(exc):
                    raise
                # CPython 3.11.0-3.11.2 (Debian 12's python3): aborting a TLS connection whose
                # server already went away fails inside asyncio (elastic/rally#1714). That
                # connection is gone anyway; the run must end as it would have, not crash.

    def url_for(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, object] | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
        body: bytes | None = None,
    ) -> ApiResponse:
        """Send one attempt; return the 2xx reply or raise the matching ``errors`` class.

        ``body``: a JSON document already encoded (sent as is, ``application/json``), instead
        of ``json_body``, so a caller that encoded it off the event loop does not pay twice."""
        if self._session is None:
            raise RuntimeError("FlexPayClient must be used as an async context manager")
        endpoint_class = EndpointClass.of_method(method)
        limiter = self.limiters.for_class(endpoint_class)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        # Acquired and released by hand: ``async with`` costs two more coroutines per request.
        in_flight = self._in_flight
        await in_flight.acquire()
        try:
            ticket = limiter.try_acquire()
            if ticket is None:
                ticket = await limiter.acquire()
            sent = time.perf_counter()
            self._on_the_wire += 1
            self._wire_idle.clear()
            try:
                status, reply_headers, raw = await self._send(
                    method, path, json_body=json_body, params=params, headers=headers, data=body
                )
            finally:
                self._on_the_wire -= 1
                if self._on_the_wire == 0:
                    self._wire_idle.set()
            elapsed = time.perf_counter() - sent
        finally:
            in_flight.release()
        feedback = parse_feedback(reply_headers, status=status, now_epoch=self._wall_clock())
        if status == 429:
            feedback = precise_retry_after(feedback, raw)
        # The ticket lets the limiter count a burst of 429s from one window as one decrease; a
        # bare 503 with no JSON envelope is how nginx refuses by default, so it is a throttle.
        throttled = True if status == 503 and _decode_json(raw) is None else None
        if not limiter.observe_nowait(status, feedback, throttled=throttled):
            await limiter.observe(status, feedback, ticket=ticket, throttled=throttled)
        if self._token_bytes in raw:
            # A server echoing our token in a reply (even a success, e.g. as an id) must not
            # get it into the journal, results.csv or a report: everything below sees it
            # scrubbed, and a scrubbed id fails ``usable_server_id``.
            raw = raw.replace(self._token_bytes, _SCRUBBED.encode())
        try:
            return _to_response(status, reply_headers, raw, feedback, elapsed)
        except errors.ApiError as exc:
            # The error text comes from the server: one that echoes our Authorization header
            # back must not put the token into a report, a log line or a traceback.
            _scrub_secret(exc, self._token)
            raise

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, object] | None,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str],
        data: bytes | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        assert self._session is not None
        try:
            async with self._session.request(
                method,
                self.url_for(path),
                json=json_body,
                data=data,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                raw = await _read_capped(resp, self._max_response_bytes)
                return resp.status, resp.headers, raw
        except aiohttp.ClientConnectorCertificateError as exc:
            raise errors.TlsVerificationFailed(
                f"the TLS certificate of {urlsplit(self.base_url).hostname} did not verify "
                f"({_reason(exc.certificate_error)})"
            ) from None
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # The connection never opened, so the request cannot have been applied.
            raise errors.TransportError(
                f"could not connect to {urlsplit(self.base_url).netloc}: {_reason(exc)}",
                indeterminate=False,
                timeout=isinstance(exc, asyncio.TimeoutError),
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Sent (or partly sent) with no complete answer: the outcome is unknown.
            timed_out = isinstance(exc, TimeoutError)
            raise errors.TransportError(
                "no response: the request timed out"
                if timed_out
                else f"the connection failed mid-request: {_reason(exc)}",
                indeterminate=True,
                timeout=timed_out,
            ) from None


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, read to its end, or ``ResponseTooLarge`` once it passes ``cap`` bytes.

    ``content.read(n)`` returns whatever has arrived so far, not ``n`` bytes: a large reply
    that comes in pieces would be cut short and misread. So read until EOF. Each read is
    bounded by the session's ``sock_read`` timeout and the attempt by ``total``, so a body
    that never ends ends in a timeout (``TransportError``) or at the cap, never in a hang.
    """
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise errors.ResponseTooLarge(
            f"the server announced a {declared}-byte response; the limit is {cap} bytes",
            status=resp.status,
            request_id=resp.headers.get("X-Request-Id"),
        )
    headers = resp.headers
    if (
        declared is not None
        and "Transfer-Encoding" not in headers
        and ("Content-Encoding" not in headers)
    ):
        # Neither chunked nor compressed (aiohttp would inflate it past the length): the
        # parser stops at Content-Length, so the body cannot pass the cap. One read to the
        # end, as ``aiohttp`` itself reads a body.
        return await resp.read()
    pieces: list[bytes] = []
    size = 0
    while True:
        piece = await resp.content.read(min(_READ_PIECE, cap + 1 - size))
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)
        size += len(piece)
        if size > cap:
            raise errors.ResponseTooLarge(
                f"the server's response exceeded {cap} bytes",
                status=resp.status,
                request_id=resp.headers.get("X-Request-Id"),
            )


#: Bytes asked for per read; ``read`` may return fewer.
_READ_PIECE = 64 * 1024


_SCRUBBED = "[REDACTED]"


def _scrub_secret(exc: errors.ApiError, secret: str) -> None:
    """Replace ``secret`` in every text an ``ApiError`` carries (message, args, fields, details)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(secret, _SCRUBBED)
        if isinstance(value, Mapping):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(clean(v) for v in value)
        return value

    exc.message = clean(exc.message)
    exc.args = clean(exc.args)
    exc.code = clean(exc.code)
    exc.error_type = clean(exc.error_type)
    exc.request_id = clean(exc.request_id)
    exc.field = clean(exc.field)
    exc.details = clean(exc.details)


def _reason(exc: BaseException) -> str:
    """A short cause without request details (aiohttp reprs can carry headers)."""
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return str(text)


def precise_retry_after(feedback: RateLimitFeedback, raw: bytes) -> RateLimitFeedback:
    """``feedback`` with the 429 envelope's fractional ``retry_after`` when it is shorter.

    ``Retry-After`` is whole seconds (RFC 9110), so a server rounds a 14 ms wait up to 1 s;
    the contract's error body gives the same wait to the millisecond. Obeying the rounded
    header pauses the whole class for a second per 429: at 70 requests/s that is ~50 lost
    requests each time (benchmarks, figure 1 case 2). The header still wins when the body
    has no number, and a body value is never allowed to lengthen the wait.
    """
    body = _decode_json(raw)
    envelope = body.get("error") if body else None
    value = envelope.get("retry_after") if isinstance(envelope, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return feedback
    seconds = float(value)
    if not 0.0 <= seconds < (feedback.retry_after if feedback.retry_after is not None else 3600.0):
        return feedback
    return dataclasses.replace(feedback, retry_after=seconds)


def _decode_json(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    if raw[:1] == b"{":
        # Every reply comes here: pydantic-core's parser (a dependency already) reads a reply
        # in half the time of ``json``. It accepts no document ``json`` rejects, and reads
        # the ones both accept alike; what it refuses (a lone surrogate escape, a BOM…) goes
        # to ``json`` below, so the result is ``json``'s whatever the bytes. Only the keys
        # are cached: they repeat from reply to reply, the values (ids, emails) do not.
        try:
            value = _from_json(raw, cache_strings="keys")
        except ValueError:
            pass
        else:
            return value if isinstance(value, dict) else None
    try:
        if raw[:1] == b"{" and b"\x00" not in raw[:4]:
            # What ``json.loads`` would detect (no BOM, no NUL in the first bytes: UTF-8),
            # without its per-call detection.
            value = _JSON.decode(raw.decode("utf-8", "surrogatepass"))
        else:
            value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


_JSON = json.JSONDecoder()


def _to_response(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    feedback: RateLimitFeedback,
    elapsed: float,
) -> ApiResponse:
    body = _decode_json(raw)
    request_id = headers.get("X-Request-Id")
    if status == 204 and not raw:
        # No Content (DELETE of a payroll item): success has no body by definition.
        body = {}
    if 200 <= status < 300:
        if body is None:
            raise errors.UnexpectedResponse(
                f"HTTP {status} without a JSON object body", status=status, request_id=request_id
            )
        return ApiResponse(
            status=status,
            body=body,
            request_id=request_id,
            replayed=headers.get("Idempotent-Replayed", "").lower() == "true",
            headers=headers,
            elapsed=elapsed,
        )
    # wait_hint: Retry-After, else X-RateLimit-Reset; the policy caps it and counts it
    # against the row deadline.
    wait = feedback.wait_hint if status == 429 else feedback.retry_after
    raise error_for(status, body, request_id=request_id, retry_after=wait)


def error_for(
    status: int,
    body: Mapping[str, Any] | None,
    *,
    request_id: str | None,
    retry_after: float | None,
) -> errors.ApiError:
    """Map an error status and its (possibly absent) envelope to the right exception."""
    envelope = body.get("error") if body else None
    info: Mapping[str, Any] = envelope if isinstance(envelope, Mapping) else {}
    code = _text(info.get("code"))
    message = _text(info.get("message")) or f"HTTP {status} with no error details"
    request_id = _text(info.get("request_id")) or request_id
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "error_type": _text(info.get("type")),
        "request_id": request_id,
        "field": _text(info.get("field")),
        "details": {k: v for k, v in info.items() if k not in {"message"}},
    }
    if retry_after is None and isinstance(info.get("retry_after"), int | float):
        retry_after = max(0.0, min(float(info["retry_after"]), 3600.0))
    if status == 401:
        return errors.AuthenticationFailed(f"the server rejected the token: {message}", **common)
    if status == 403:
        scope = _text(info.get("required_scope"))
        needs = f" (needs scope {scope})" if scope else ""
        return errors.PermissionDenied(f"the token is not allowed to do this{needs}", **common)
    if status == 429:
        return errors.RateLimited(message, retry_after=retry_after, **common)
    if status == 409 and code == "idempotency_in_progress":
        return errors.KeyInProgress(message, retry_after=retry_after, **common)
    if status >= 500:
        # Retried only if ``core.policies.is_retryable`` says so (RETRYABLE_STATUSES); a 501
        # or 505 is not retried but fails the row, so ``resume`` tries it again.
        return errors.ServerError(message, retry_after=retry_after, **common)
    if 300 <= status < 400:
        return errors.UnexpectedResponse(
            f"the server answered with a redirect (HTTP {status}); redirects are not followed",
            **common,
        )
    rejected: dict[int, type[errors.RowRejected]] = {
        404: errors.NotFound,
        409: errors.Conflict,
        422: errors.ValidationFailed,
    }
    return rejected.get(status, errors.RowRejected)(message, **common)


def _text(value: object) -> str | None:
    return value[:500] if isinstance(value, str) else None


def _is_sslproto_abort_bug(exc: AttributeError) -> bool:
    """Whether ``exc`` is asyncio's ``_SSLProtocolTransport.abort`` on a lost protocol."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).parts[-2:] == ("asyncio", "sslproto.py")
