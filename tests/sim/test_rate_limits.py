"""Rate limiting over HTTPS with an injected clock: headers, 429s, reset styles, nginx mode."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, LimitSettings, Rate
from flexpay_batch.sim import Simulator
from flexpay_batch.sim.testing import FakeClock, SimClient, employee_body

MakeSimulator = Callable[..., Awaitable[Simulator]]

SMALL = LimitSettings(read=ClassLimits(Rate(60, 60.0), 3), write=ClassLimits(Rate(30, 60.0), 2))


@pytest.fixture
def small_simulator(make_simulator: MakeSimulator, fake_clock: FakeClock) -> MakeSimulator:
    """Simulators with the SMALL limits on the fake clock (further settings as overrides)."""

    async def make(**overrides: object) -> Simulator:
        return await make_simulator(limits=SMALL, clock=fake_clock, **overrides)

    return make


async def exhaust_writes(api: SimClient) -> None:
    """Spend SMALL's write burst of 2 and check that the third write is refused."""
    for _ in range(2):
        await api.post("employees", json={})
    assert (await api.post("employees", json={})).status == 429


async def test_every_admitted_response_carries_the_rate_limit_headers(
    small_simulator: MakeSimulator,
) -> None:
    """Limit is per minute, Remaining counts down in whole requests, Reset is a delta in seconds."""
    sim = await small_simulator()
    async with SimClient(sim) as api:
        replies = [await api.get("pay_groups") for _ in range(3)]
        write = await api.post("employees", json=employee_body("e1"))
    assert [r.headers["X-RateLimit-Limit"] for r in replies] == ["60", "60", "60"]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0"]
    assert [r.headers["X-RateLimit-Reset"] for r in replies] == ["1", "2", "3"]
    assert write.headers["X-RateLimit-Limit"] == "30"
    assert write.headers["X-RateLimit-Remaining"] == "1"


async def test_over_the_limit_is_429_with_envelope_and_retry_after(
    small_simulator: MakeSimulator,
) -> None:
    """The request after the burst gets 429 rate_limited with Retry-After and retry_after."""
    sim = await small_simulator()
    async with SimClient(sim) as api:
        for _ in range(3):
            assert (await api.get("pay_groups")).status == 200
        refused = await api.get("pay_groups")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.error["type"] == "rate_limit_error"
    assert refused.error["code"] == "rate_limited"
    assert refused.error["retry_after"] == pytest.approx(1.0)


async def test_bucket_refills_with_the_injected_clock(
    small_simulator: MakeSimulator, fake_clock: FakeClock
) -> None:
    """After a 429, advancing the fake clock by Retry-After lets the next request in."""
    sim = await small_simulator()
    async with SimClient(sim) as api:
        await exhaust_writes(api)
        fake_clock.advance(2.0)
        assert (await api.post("employees", json={})).status == 422
        assert (await api.post("employees", json={})).status == 429


async def test_reads_and_writes_have_separate_buckets(small_simulator: MakeSimulator) -> None:
    """Exhausting writes leaves reads untouched."""
    sim = await small_simulator()
    async with SimClient(sim) as api:
        await exhaust_writes(api)
        assert (await api.get("pay_groups")).status == 200


async def test_epoch_reset_style_sends_epoch_seconds(small_simulator: MakeSimulator) -> None:
    """With reset_style='epoch' X-RateLimit-Reset is an absolute Unix time, GitHub style."""
    sim = await small_simulator(reset_style="epoch")
    async with SimClient(sim) as api:
        reply = await api.get("pay_groups")
    reset = int(reply.headers["X-RateLimit-Reset"])
    assert time.time() - 5 < reset < time.time() + 5


async def test_absent_reset_style_sends_no_reset_header(small_simulator: MakeSimulator) -> None:
    """With reset_style='absent' Limit and Remaining are sent but Reset is not."""
    sim = await small_simulator(reset_style="absent")
    async with SimClient(sim) as api:
        reply = await api.get("pay_groups")
    assert "X-RateLimit-Reset" not in reply.headers
    assert reply.headers["X-RateLimit-Remaining"] == "2"


async def test_headers_off_gives_bare_nginx_429(small_simulator: MakeSimulator) -> None:
    """rate_limit_headers=False: no X-RateLimit-*, and the 429 is HTML without Retry-After."""
    sim = await small_simulator(rate_limit_headers=False)
    async with SimClient(sim) as api:
        ok = [await api.get("pay_groups") for _ in range(3)]
        refused = await api.get("pay_groups")
    assert all(not any(h.startswith("X-RateLimit") for h in r.headers) for r in (*ok, refused))
    assert refused.status == 429
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "Retry-After" not in refused.headers
    assert "nginx" in refused.text


async def test_enforced_limits_refuse_before_the_advertised_limit(
    make_simulator: MakeSimulator, fake_clock: FakeClock
) -> None:
    """enforced_limits stricter than limits: 429 arrives while headers still promise more."""
    strict = LimitSettings(read=DEFAULT_LIMITS.read, write=ClassLimits(Rate(10, 60.0), 1))
    sim = await make_simulator(clock=fake_clock, enforced_limits=strict)
    async with SimClient(sim) as api:
        first = await api.post("employees", json={})
        second = await api.post("employees", json={})
    assert first.status == 422
    assert first.headers["X-RateLimit-Limit"] == "100"
    assert second.status == 429
    assert second.headers["X-RateLimit-Remaining"] == "19"
    assert second.headers["Retry-After"] == "6"


async def test_per_second_limits_are_advertised_per_minute(
    make_simulator: MakeSimulator, fake_clock: FakeClock
) -> None:
    """A "5/s" write limit shows as X-RateLimit-Limit: 300 (the contract's unit is per minute)."""
    limits = LimitSettings(read=DEFAULT_LIMITS.read, write=ClassLimits(Rate.parse("5/s"), 5))
    sim = await make_simulator(limits=limits, clock=fake_clock)
    async with SimClient(sim) as api:
        reply = await api.post("employees", json={})
    assert reply.headers["X-RateLimit-Limit"] == "300"


async def test_unauthenticated_requests_carry_no_rate_headers(simulator: Simulator) -> None:
    """A 401 is answered before any bucket is touched, so it has no X-RateLimit-* headers."""
    async with SimClient(simulator) as api:
        reply = await api.get("pay_groups", token="nope")
    assert reply.status == 401
    assert "X-RateLimit-Remaining" not in reply.headers
