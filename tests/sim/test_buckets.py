"""The token bucket as a pure object driven by a fake clock: no server, no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings, Rate
from flexpay_batch.sim.buckets import BucketSet, TokenBucket, format_per_minute, format_seconds
from flexpay_batch.sim.testing import FakeClock

limits_strategy = st.builds(
    ClassLimits,
    rate=st.builds(Rate, count=st.integers(1, 500), period=st.sampled_from([1.0, 10.0, 60.0])),
    burst=st.integers(1, 50),
)


def _accepted_times(limits: ClassLimits, gaps: list[float]) -> list[float]:
    clock = FakeClock(start=0.0)
    bucket = TokenBucket(limits, clock)
    accepted = []
    for gap in gaps:
        clock.advance(gap)
        if bucket.try_acquire().allowed:
            accepted.append(clock.now)
    return accepted


@settings(max_examples=300, deadline=None)
@given(limits=limits_strategy, gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=120))
def test_accepted_in_any_interval_never_exceed_burst_plus_rate_times_interval(
    limits: ClassLimits, gaps: list[float]
) -> None:
    """For any arrival times, accepted requests in a window [a, b] are ≤ burst + rate·(b-a)."""
    accepted = _accepted_times(limits, gaps)
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            count = j - i + 1
            assert count <= limits.max_starts(accepted[j] - start) + 1e-6


@settings(max_examples=300, deadline=None)
@given(
    limits=limits_strategy,
    slack=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=80),
    spent=st.integers(0, 60),
)
def test_client_within_the_sustained_rate_after_its_burst_is_never_refused(
    limits: ClassLimits, slack: list[float], spent: int
) -> None:
    """After spending up to its burst, a client spacing requests ≥ 1/rate apart always gets in."""
    clock = FakeClock(start=0.0)
    bucket = TokenBucket(limits, clock)
    for _ in range(min(spent, limits.burst)):
        assert bucket.try_acquire().allowed
    interval = 1.0 / limits.rate.per_second
    for extra in slack:
        clock.advance(interval * (1.0 + extra))
        assert bucket.try_acquire().allowed


def test_bucket_starts_full_and_refuses_after_its_burst() -> None:
    """A new bucket admits exactly ``burst`` requests at one instant, then says when to retry."""
    clock = FakeClock()
    bucket = TokenBucket(ClassLimits(Rate(60, 60.0), burst=3), clock)
    results = [bucket.try_acquire() for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[3].retry_after == pytest.approx(1.0)
    assert results[3].reset_after == pytest.approx(3.0)


def test_refused_requests_take_nothing_from_the_bucket() -> None:
    """Hammering an empty bucket does not push the next admission further away."""
    clock = FakeClock()
    bucket = TokenBucket(ClassLimits(Rate(1, 1.0), burst=1), clock)
    assert bucket.try_acquire().allowed
    for _ in range(100):
        assert not bucket.try_acquire().allowed
    clock.advance(1.0)
    assert bucket.try_acquire().allowed


def test_refill_stops_at_the_burst_capacity() -> None:
    """A long idle period refills to ``burst`` tokens, never more."""
    clock = FakeClock()
    bucket = TokenBucket(ClassLimits(Rate(100, 1.0), burst=5), clock)
    bucket.try_acquire()
    clock.advance(3600.0)
    assert bucket.peek().remaining == 5


def test_enforced_limits_decide_while_headers_show_the_advertised_bucket() -> None:
    """With stricter enforcement, refusals come early while ``remaining`` still looks generous."""
    clock = FakeClock()
    advertised = LimitSettings(
        read=ClassLimits(Rate(300, 60.0), 50), write=ClassLimits(Rate(100, 60.0), 20)
    )
    enforced = LimitSettings(
        read=ClassLimits(Rate(300, 60.0), 50), write=ClassLimits(Rate(10, 60.0), 2)
    )
    buckets = BucketSet(advertised, enforced, clock)
    first, second, third = (buckets.admit("t", EndpointClass.WRITE) for _ in range(3))
    assert first.allowed
    assert second.allowed
    assert not third.allowed
    assert third.remaining == 18
    assert third.retry_after == pytest.approx(6.0)


def test_buckets_are_separate_per_token_and_class() -> None:
    """One token's writes do not use up its reads or another token's writes."""
    clock = FakeClock()
    limits = LimitSettings(read=ClassLimits(Rate(1, 60.0), 1), write=ClassLimits(Rate(1, 60.0), 1))
    buckets = BucketSet(limits, None, clock)
    assert buckets.admit("a", EndpointClass.WRITE).allowed
    assert not buckets.admit("a", EndpointClass.WRITE).allowed
    assert buckets.admit("a", EndpointClass.READ).allowed
    assert buckets.admit("b", EndpointClass.WRITE).allowed


@pytest.mark.parametrize(
    ("seconds", "fractional", "expected"),
    [
        (0.0, False, "0"),
        (0.2, False, "1"),
        (1.0, False, "1"),
        (1.2, False, "2"),
        (0.25, True, "0.25"),
    ],
)
def test_header_seconds_round_up_to_whole_seconds_unless_fractional(
    seconds: float, fractional: bool, expected: str
) -> None:
    """Retry-After and Reset never round down (a client waiting that long will get in)."""
    assert format_seconds(seconds, fractional=fractional) == expected


@pytest.mark.parametrize(
    ("rate", "expected"), [(Rate(100, 60.0), "100"), (Rate(5, 1.0), "300"), (Rate(1, 7.0), "8.571")]
)
def test_limit_header_is_the_sustained_rate_per_minute(rate: Rate, expected: str) -> None:
    """X-RateLimit-Limit is requests per minute whatever period the limit was configured in."""
    assert format_per_minute(ClassLimits(rate, 1)) == expected
