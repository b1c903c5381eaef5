"""Rate-limit header parsing: every spelling servers send, and garbage, never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from flexpay_batch.api.headers import (
    DEFAULT_CAP,
    NO_FEEDBACK,
    RateLimitFeedback,
    parse_feedback,
    parse_reset,
    parse_retry_after,
)

#: 2026-01-01T00:00:00Z, a Thursday.
NOW = 1_767_225_600.0
NOW_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"
IN_TWO_MINUTES = "Thu, 01 Jan 2026 00:02:00 GMT"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0.6", 0.6),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("99999999999", DEFAULT_CAP),
        (IN_TWO_MINUTES, 120.0),
        ("Thursday, 01-Jan-26 00:02:00 GMT", 120.0),
        ("Thu Jan  1 00:02:00 2026", 120.0),
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("12abc", None),
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("Thu, 32 Jan 2026 00:02:00 GMT", None),
        ("9" * 300, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is delay-seconds (fractional too) or an HTTP-date, clamped, else None."""
    assert parse_retry_after(value, now_epoch=NOW) == pytest.approx(expected)


def test_parse_retry_after_cap_is_configurable() -> None:
    """A caller-chosen cap bounds even a well-formed but long Retry-After."""
    assert parse_retry_after("600", now_epoch=NOW, cap=60.0) == 60.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("999999999", DEFAULT_CAP),
        (str(int(NOW) + 30), 30.0),
        (f"{NOW + 30.5}", 30.5),
        (str(int(NOW * 1000) + 30_000), 30.0),
        (str(int(NOW) - 100), 0.0),
        (str(int(NOW * 1000) - 100_000), 0.0),
        ("1792152901", DEFAULT_CAP),
        (IN_TWO_MINUTES, 120.0),
        (None, None),
        ("", None),
        ("Thu", None),
        ("30s", None),
        ("0x1e", None),
    ],
)
def test_parse_reset_styles(value: str | None, expected: float | None) -> None:
    """Reset is a delta, epoch seconds, epoch milliseconds or an HTTP-date; clamped; else None."""
    assert parse_reset(value, date_header=None, now_epoch=NOW) == pytest.approx(expected)


def test_parse_reset_epoch_measured_against_date_header() -> None:
    """With our clock an hour fast, an epoch Reset is still read against the server's Date."""
    skewed_local = NOW + 3600
    reset = parse_reset(str(int(NOW) + 30), date_header=NOW_DATE, now_epoch=skewed_local)
    assert reset == 30.0


def test_parse_reset_falls_back_to_local_clock_when_date_is_garbage() -> None:
    """An unreadable Date header means the local clock measures the epoch."""
    reset = parse_reset(str(int(NOW) + 30), date_header="yesterday-ish", now_epoch=NOW)
    assert reset == 30.0


def test_parse_reset_delta_ignores_date_header() -> None:
    """A small number is a delta whatever the Date header says."""
    assert parse_reset("30", date_header="Mon, 01 Jan 2001 00:00:00 GMT", now_epoch=NOW) == 30.0


def test_parse_feedback_contract_headers() -> None:
    """The contract's X-RateLimit-* headers fill limit (per minute), remaining and reset."""
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "12",
        "Date": NOW_DATE,
    }
    assert parse_feedback(headers, status=201, now_epoch=NOW) == RateLimitFeedback(
        limit=100.0, remaining=7, reset_after=12.0, retry_after=None
    )


def test_parse_feedback_names_are_case_insensitive_in_a_plain_dict() -> None:
    """Lower-case names in a plain dict are read like their canonical spelling."""
    headers = {"x-ratelimit-remaining": "3", "RETRY-AFTER": "2"}
    feedback = parse_feedback(headers, status=429, now_epoch=NOW)
    assert (feedback.remaining, feedback.retry_after) == (3, 2.0)


def test_parse_feedback_accepts_aiohttp_multidict() -> None:
    """aiohttp's case-insensitive header multidict is a valid input."""
    headers = CIMultiDict({"x-ratelimit-limit": "300.000", "Retry-After": "0.6"})
    feedback = parse_feedback(headers, status=429, now_epoch=NOW)
    assert (feedback.limit, feedback.retry_after) == (300.0, 0.6)


@pytest.mark.parametrize("status", [200, 201, 301, 404, 422])
def test_retry_after_ignored_unless_429_or_5xx(status: int) -> None:
    """Retry-After only means "come back later" on 429 and 5xx responses."""
    assert parse_feedback({"Retry-After": "5"}, status=status, now_epoch=NOW).retry_after is None


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retry_after_read_on_429_and_5xx(status: int) -> None:
    """On 429 and 5xx Retry-After is read."""
    assert parse_feedback({"Retry-After": "5"}, status=status, now_epoch=NOW).retry_after == 5.0


def test_retry_after_http_date_measured_against_date_header() -> None:
    """An HTTP-date Retry-After is a delta from the response's own Date, not our clock."""
    headers = {"Retry-After": IN_TWO_MINUTES, "Date": NOW_DATE}
    feedback = parse_feedback(headers, status=503, now_epoch=NOW - 3600)
    assert feedback.retry_after == 120.0


def test_bare_nginx_429_gives_no_feedback() -> None:
    """A 429 with no rate-limit headers at all (nginx limit_req) parses to NO_FEEDBACK."""
    headers = {"Content-Type": "text/html", "Server": "nginx"}
    feedback = parse_feedback(headers, status=429, now_epoch=NOW)
    assert feedback == NO_FEEDBACK
    assert feedback.wait_hint is None


def test_wait_hint_prefers_retry_after_over_reset() -> None:
    """Retry-After takes precedence over Reset as the time to wait."""
    headers = {"Retry-After": "2", "X-RateLimit-Reset": "50"}
    assert parse_feedback(headers, status=429, now_epoch=NOW).wait_hint == 2.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"RateLimit": "limit=100, remaining=50, reset=30"},
            RateLimitFeedback(limit=100.0, remaining=50, reset_after=30.0),
        ),
        (
            {"RateLimit-Limit": "60", "RateLimit-Remaining": "4", "RateLimit-Reset": "9"},
            RateLimitFeedback(limit=60.0, remaining=4, reset_after=9.0),
        ),
        (
            {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'},
            RateLimitFeedback(limit=100.0, remaining=50, reset_after=30.0),
        ),
        (
            {"RateLimit-Policy": "10;w=1"},
            RateLimitFeedback(limit=600.0),
        ),
        (
            {"RateLimit": '"burst";r=5;t=1, "daily";r=900;t=3600'},
            RateLimitFeedback(remaining=5, reset_after=3600.0),
        ),
        (
            {"X-RateLimit-Limit": "100, 100;w=60"},
            RateLimitFeedback(limit=100.0),
        ),
        (
            {"X-RateLimit-Limit": "10;w=1"},
            RateLimitFeedback(limit=600.0),
        ),
        (
            {"X-RateLimit-Remaining": "2", "RateLimit": "limit=100, remaining=50, reset=30"},
            RateLimitFeedback(limit=100.0, remaining=2, reset_after=30.0),
        ),
    ],
)
def test_parse_feedback_ietf_drafts(headers: dict[str, str], expected: RateLimitFeedback) -> None:
    """IETF RateLimit forms are read, X-RateLimit-* wins, the strictest policy is kept."""
    assert parse_feedback(headers, status=200, now_epoch=NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Remaining": "-4"}, RateLimitFeedback(remaining=0)),
        ({"X-RateLimit-Remaining": "4.9"}, RateLimitFeedback(remaining=4)),
        ({"X-RateLimit-Remaining": "four"}, NO_FEEDBACK),
        ({"X-RateLimit-Limit": "0"}, NO_FEEDBACK),
        ({"X-RateLimit-Limit": "unlimited"}, NO_FEEDBACK),
        ({"RateLimit": ";;;==,,"}, NO_FEEDBACK),
        ({"RateLimit-Policy": '"x";q=10;w=0'}, NO_FEEDBACK),
    ],
)
def test_parse_feedback_odd_values(headers: dict[str, str], expected: RateLimitFeedback) -> None:
    """Negative, fractional or unreadable values are clamped or ignored, never fatal."""
    assert parse_feedback(headers, status=200, now_epoch=NOW) == expected


_NAMES = st.sampled_from(
    [
        "X-RateLimit-Limit",
        "x-ratelimit-remaining",
        "X-RATELIMIT-RESET",
        "RateLimit",
        "RateLimit-Policy",
        "RateLimit-Reset",
        "Retry-After",
        "Date",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{0,16}(\.[0-9]{0,4})?", fullmatch=True),
    st.from_regex(r'"[a-z]{0,5}";(r|t|q|w)=-?[0-9]{0,12}(;(r|t|q|w)=[0-9]{0,4})?', fullmatch=True),
)


@given(
    headers=st.dictionaries(_NAMES, _VALUES, max_size=8),
    status=st.integers(100, 599),
    now=st.floats(0, 4e9),
)
def test_parse_feedback_never_raises_and_clamps(
    headers: dict[str, str], status: int, now: float
) -> None:
    """For any header values parse_feedback returns clamped, non-negative numbers."""
    feedback = parse_feedback(headers, status=status, now_epoch=now)
    for seconds in (feedback.reset_after, feedback.retry_after):
        assert seconds is None or 0.0 <= seconds <= DEFAULT_CAP
    assert feedback.remaining is None or feedback.remaining >= 0
    assert feedback.limit is None or feedback.limit > 0


def test_aiohttp_headers_are_read_in_place_case_insensitively() -> None:
    """aiohttp's headers (a case-insensitive multidict) give the same feedback as a dict, and
    are not copied per response (the header fast path of issue 16)."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from flexpay_batch.api.headers import _lowered

    raw = {
        "X-RateLimit-Limit": "100",
        "x-ratelimit-remaining": "7",
        "X-RATELIMIT-RESET": "12",
        "Retry-After": "3",
    }
    proxy = CIMultiDictProxy(CIMultiDict(raw))
    assert _lowered(proxy) is proxy
    for status in (201, 429):
        assert parse_feedback(proxy, status=status, now_epoch=0.0) == parse_feedback(
            raw, status=status, now_epoch=0.0
        )
    assert parse_feedback(proxy, status=429, now_epoch=0.0).remaining == 7
