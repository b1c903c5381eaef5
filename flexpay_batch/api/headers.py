"""Rate-limit response headers → one ``RateLimitFeedback`` value; never raises.

    feedback = parse_feedback(response.headers, status=response.status, now_epoch=time.time())
    await limiter.observe(response.status, feedback)

Response headers are untrusted input from a server that may be buggy, hostile or simply of
another school, so every parser here is total: anything it cannot read with confidence
becomes ``None`` ("the server said nothing usable") and the engine falls back on its own
limiter. Every duration is a delta in seconds from *now*, clamped to ``[0, cap]``.

Accepted spellings (names are case-insensitive; the first one present wins):

- ``Retry-After``: delay-seconds (fractional too) or an HTTP-date (RFC 9110 §10.2.3). Only
  read on 429 and 5xx responses, where it means "come back later".
- ``X-RateLimit-Limit`` (the contract: sustained requests per minute; a trailing ``;w=N``
  window is honoured), ``X-RateLimit-Remaining`` (whole requests left now),
  ``X-RateLimit-Reset`` (a delta, epoch seconds, epoch milliseconds or an HTTP-date; epochs
  are measured against the response's ``Date`` header when it has one, so a skewed local
  clock does not matter).
- The IETF httpapi drafts: ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (older drafts),
  ``RateLimit: limit=100, remaining=50, reset=30`` and the newer structured form
  ``RateLimit: "default";r=50;t=30`` with ``RateLimit-Policy: "default";q=100;w=60``. When a
  header lists several policies, the most restrictive one is kept.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy

#: Largest delay (seconds) any header may ask for. Beyond an hour a value is far more likely a
#: misread epoch than a real instruction; the retry policy and limiter cap it again, lower.
DEFAULT_CAP = 3600.0

# Epoch thresholds from the reliability notes: above 1e9 a number is an instant (seconds since
# 1970, i.e. after 2001), above 1e12 it is the same in milliseconds. No sane delta is that big.
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e12

# Header values longer than this are not rate-limit data; refusing them early bounds the work a
# hostile response can make us do.
_MAX_VALUE_LENGTH = 256

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_LEADING_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)")
_WINDOW = re.compile(r";\s*w\s*=\s*(\d+(?:\.\d*)?)")
_PARAM = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*=\s*\"?([^;,\"\s]*)\"?")


@dataclass(frozen=True, slots=True)
class RateLimitFeedback:
    """What one response said about the rate limit; ``None`` wherever it said nothing usable.

    - ``limit``: the sustained limit of the endpoint class, requests **per minute**.
    - ``remaining``: whole requests the server's bucket holds now (``>= 0``).
    - ``reset_after``: seconds until the bucket is full again (a delta, clamped).
    - ``retry_after``: seconds the server asked us to wait (429/5xx only; takes precedence).
    """

    limit: float | None = None
    remaining: int | None = None
    reset_after: float | None = None
    retry_after: float | None = None

    @property
    def wait_hint(self) -> float | None:
        """Seconds to wait before the server takes requests again: Retry-After, else Reset."""
        return self.retry_after if self.retry_after is not None else self.reset_after


#: Feedback from a response without any rate-limit header (nginx ``limit_req`` style).
NO_FEEDBACK = RateLimitFeedback()


def _clamp(seconds: float, cap: float) -> float | None:
    """Clamp a delay into ``[0, cap]``; NaN (never a valid delay) becomes ``None``."""
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def _number(value: str | None) -> float | None:
    """A plain decimal number (no exponent, no ``inf``/``nan``), else ``None``."""
    if value is None or len(value) > _MAX_VALUE_LENGTH:
        return None
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return float(text)


def _header_parser(parse: Callable[[str], float | None]) -> Callable[[str | None], float | None]:
    """``parse`` made safe and cheap for header values: ``None`` for a value that is absent or
    longer than ``_MAX_VALUE_LENGTH``, and the last 64 results kept. It must be a pure function
    of the text: a server repeats its values (the same limit on every response, a ``Date``
    that changes once a second while a run reads hundreds of responses a second)."""
    cached = functools.lru_cache(maxsize=64)(parse)

    def parse_header(value: str | None) -> float | None:
        if value is None or len(value) > _MAX_VALUE_LENGTH:
            return None
        return cached(value)

    return parse_header


@_header_parser
def _http_date_epoch(value: str) -> float | None:
    """Epoch seconds of an HTTP-date (IMF-fixdate, RFC 850 or asctime), else ``None``."""
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are always GMT; asctime carries no zone at all.
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def parse_retry_after(
    value: str | None, *, now_epoch: float, cap: float = DEFAULT_CAP
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, clamped to ``[0, cap]``.

    Accepts delay-seconds (``"120"``, and the non-standard but common ``"0.6"``) or an
    HTTP-date, measured against ``now_epoch`` (seconds since 1970; pass the response's
    ``Date`` when known). A negative number or a past date means "now" (``0.0``); anything
    malformed or absent gives ``None``. Never raises.
    """
    seconds = _number(value)
    if seconds is not None:
        return _clamp(seconds, cap)
    moment = _http_date_epoch(value)
    if moment is None:
        return None
    return _clamp(moment - now_epoch, cap)


def parse_reset(
    value: str | None,
    *,
    date_header: str | None,
    now_epoch: float,
    cap: float = DEFAULT_CAP,
) -> float | None:
    """Seconds until the rate-limit window resets according to an ``*-Reset`` value.

    A number above 1e12 is epoch milliseconds, above 1e9 epoch seconds, anything else a
    delta in seconds. Epochs (and HTTP-dates) are measured against the response's ``Date``
    header when it parses, else against ``now_epoch`` (the local clock), so a server whose
    clock disagrees with ours still gets the delta it meant. The result is clamped to
    ``[0, cap]``: a past epoch is ``0.0``, never a stall. Malformed or absent → ``None``.
    Never raises.
    """
    number = _number(value)
    if number is None:
        moment = _http_date_epoch(value)
        if moment is None:
            return None
        return _clamp(moment - _server_now(date_header, now_epoch), cap)
    if number > _EPOCH_MILLIS:
        return _clamp(number / 1000.0 - _server_now(date_header, now_epoch), cap)
    if number > _EPOCH_SECONDS:
        return _clamp(number - _server_now(date_header, now_epoch), cap)
    return _clamp(number, cap)


def _server_now(date_header: str | None, now_epoch: float) -> float:
    """The server's idea of now: its ``Date`` header if that parses, else our clock."""
    server = _http_date_epoch(date_header)
    return now_epoch if server is None else server


@_header_parser
def _parse_limit(value: str) -> float | None:
    """``X-RateLimit-Limit`` → requests per minute; ``"100"`` or ``"100, 100;w=60"``."""
    match = _LEADING_NUMBER.match(value)
    if match is None:
        return None
    count = float(match.group(1))
    window = _WINDOW.search(value)
    per_minute = count if window is None else _per_minute(count, float(window.group(1)))
    return per_minute if per_minute is not None and per_minute > 0 else None


def _per_minute(count: float, window_seconds: float) -> float | None:
    return count * 60.0 / window_seconds if window_seconds > 0 else None


def _parse_remaining(value: str | None) -> int | None:
    """Whole requests left: a non-negative number (fractions floored, negatives → 0)."""
    number = _number(value)
    if number is None:
        return None
    return max(0, math.floor(number))


@dataclass(frozen=True, slots=True)
class _Policy:
    """One item of an IETF ``RateLimit`` / ``RateLimit-Policy`` list, already parsed."""

    limit: float | None
    remaining: int | None
    reset: str | None


def _ietf_items(value: str | None) -> list[_Policy]:
    """Items of ``limit=, remaining=, reset=`` or ``"name";r=;t=`` / ``;q=;w=`` lists."""
    if value is None or len(value) > _MAX_VALUE_LENGTH:
        return []
    if re.search(r"\blimit\s*=|\bremaining\s*=", value):
        # Draft -05/-06: one dictionary for the whole header, items separated by commas.
        return [_policy_from(value, dict(_PARAM.findall(value)))]
    return [_policy_from(item, dict(_PARAM.findall(item))) for item in value.split(",")]


def _policy_from(item: str, params: Mapping[str, str]) -> _Policy:
    lowered = {key.lower(): val for key, val in params.items()}
    # Draft -03 policies are a bare quota with a window: ``100;w=60``.
    limit = _parse_limit(lowered.get("limit", item))
    quota, window = _number(lowered.get("q")), _number(lowered.get("w"))
    if limit is None and quota is not None and quota > 0:
        limit = _per_minute(quota, window if window is not None else 60.0)
    remaining = _parse_remaining(lowered.get("remaining", lowered.get("r")))
    return _Policy(limit, remaining, lowered.get("reset", lowered.get("t")))


def _strictest_limit(items: Iterable[_Policy]) -> float | None:
    limits = [item.limit for item in items if item.limit is not None]
    return min(limits) if limits else None


def _strictest_remaining(items: Iterable[_Policy]) -> int | None:
    values = [item.remaining for item in items if item.remaining is not None]
    return min(values) if values else None


def _latest_reset(
    values: Iterable[str | None], *, date_header: str | None, now_epoch: float
) -> float | None:
    resets = [parse_reset(v, date_header=date_header, now_epoch=now_epoch) for v in values]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if name in headers:
            return headers[name]
    return None


def _lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Header names in lower case (a plain ``dict`` is case-sensitive; HTTP is not).

    aiohttp's headers are already a case-insensitive multidict: they are used as they are
    (the first value of a repeated name, as ``get`` gives), sparing a copy of every header
    of every response."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return headers
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _contract_feedback(
    lowered: Mapping[str, str], date: str | None, now_epoch: float
) -> RateLimitFeedback | None:
    """The feedback of a response below 429 carrying the contract's three ``X-RateLimit-*``
    headers, all readable; else None (``parse_feedback`` then reads every spelling).

    The same result as the general path: with ``X-RateLimit-Limit`` and ``-Remaining`` both
    readable the IETF headers are never consulted, a lone ``X-RateLimit-Reset`` is the only
    reset, and ``Retry-After`` is not read below 429. Nearly every response takes this path.
    """
    reset_value = lowered.get("x-ratelimit-reset")
    if reset_value is None:
        return None
    limit_value = lowered.get("x-ratelimit-limit")
    remaining_value = lowered.get("x-ratelimit-remaining")
    key = (limit_value, remaining_value, reset_value)
    known = _CONTRACT_SEEN.get(key)
    if known is not None:
        return known
    limit = _parse_limit(limit_value)
    if limit is None:
        return None
    remaining = _parse_remaining(remaining_value)
    if remaining is None:
        return None
    reset_after = parse_reset(reset_value, date_header=date, now_epoch=now_epoch)
    feedback = RateLimitFeedback(limit, remaining, reset_after, None)
    reset_number = _number(reset_value)
    if reset_number is not None and reset_number <= _EPOCH_SECONDS:
        # A delta reset: the feedback is a pure function of the three values (an epoch or a
        # date would depend on the clock and the Date header), so it can be remembered.
        if len(_CONTRACT_SEEN) >= _CONTRACT_SEEN_MAX:
            _CONTRACT_SEEN.clear()
        _CONTRACT_SEEN[key] = feedback
    return feedback


#: ``_contract_feedback`` results by their three header values, for delta resets only. A
#: server repeats its values (the same limit, ``remaining`` cycling through the burst, a few
#: resets), so most responses are a dict lookup instead of three parses and a new object.
_CONTRACT_SEEN: dict[tuple[str | None, str | None, str], RateLimitFeedback] = {}
_CONTRACT_SEEN_MAX: Final = 256


def parse_feedback(
    headers: Mapping[str, str], *, status: int, now_epoch: float
) -> RateLimitFeedback:
    """Read every rate-limit header of one response into a ``RateLimitFeedback``.

    ``headers`` may be any mapping (names are matched case-insensitively); ``status`` is the
    HTTP status (``Retry-After`` is only read on 429 and 5xx); ``now_epoch`` is the local wall
    clock in seconds since 1970, used only when the response carries no usable ``Date``.
    The ``X-RateLimit-*`` headers win over the IETF ones when both are present. Never raises.
    """
    lowered = _lowered(headers)
    date = lowered.get("date")
    if status < 429:
        fast = _contract_feedback(lowered, date, now_epoch)
        if fast is not None:
            return fast
    items = _ietf_items(lowered.get("ratelimit"))
    policies = _ietf_items(lowered.get("ratelimit-policy"))

    limit = _parse_limit(_first(lowered, "x-ratelimit-limit", "ratelimit-limit"))
    if limit is None:
        limit = _strictest_limit([*items, *policies])

    remaining = _parse_remaining(_first(lowered, "x-ratelimit-remaining", "ratelimit-remaining"))
    if remaining is None:
        remaining = _strictest_remaining(items)

    reset_value = _first(lowered, "x-ratelimit-reset", "ratelimit-reset")
    reset_values = [reset_value] if reset_value is not None else [i.reset for i in items]
    reset_after = _latest_reset(reset_values, date_header=date, now_epoch=now_epoch)

    retry_after = None
    if status == 429 or status >= 500:
        server_now = _server_now(date, now_epoch)
        retry_after = parse_retry_after(lowered.get("retry-after"), now_epoch=server_now)
    return RateLimitFeedback(limit, remaining, reset_after, retry_after)
