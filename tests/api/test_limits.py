"""The class limiter: burst + rate guarantee, conservative start, server feedback, AIMD.

Every test runs on looptime's fast-forwarded event loop: "two minutes" take milliseconds and
no test sleeps for real.
"""

from __future__ import annotations

import asyncio
import math
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from flexpay_batch.api.headers import NO_FEEDBACK, RateLimitFeedback
from flexpay_batch.api.ratelimit import redis_store
from flexpay_batch.api.ratelimit.aimd import AimdSettings, AimdState
from flexpay_batch.api.ratelimit.inprocess import InProcessStore
from flexpay_batch.api.ratelimit.limiter import ClassLimiter, LimiterSet, jitter_margin
from flexpay_batch.api.ratelimit.store import BucketSpec, LimiterStore
from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, EndpointClass, Rate
from tests.redisserver import shared_server

# looptime rounds loop time to 1 µs; a window count may be off by that much of a token.
_TIME_EPSILON = 1e-6


def RedisStore() -> LimiterStore:  # named like the store: it is the test id
    """A ``RedisStore`` on the shared test server, in a namespace of its own.

    Its clock is the event loop's instead of Redis ``TIME``: these properties are about the
    script's arithmetic, and looptime makes "five seconds" instant and exact. That Redis
    ``TIME`` is what processes share is checked in ``tests/api/test_redis_store.py``.
    """
    server = shared_server()
    client = aioredis.Redis.from_url(server.url)
    _OPEN_CLIENTS.append(client)
    return _LooptimeRedisStore(
        client, address=server.address, namespace=f"t{uuid.uuid4().hex}", clock=_now
    )


class _LooptimeRedisStore(redis_store.RedisStore):
    """Holds looptime's clock while the script's round trip is in flight.

    looptime fast-forwards to the next timer whenever the loop seems idle, and a loop waiting
    for a socket seems idle; it never does while an executor future is pending (it really
    waits then). So each round trip keeps a thread busy until the reply is in.
    """

    async def _eval(self, redis_key: str, argv: list[str]) -> list[Any]:
        done = threading.Event()
        hold = asyncio.get_running_loop().run_in_executor(None, done.wait)
        try:
            return await super()._eval(redis_key, argv)
        finally:
            done.set()
            await hold


_OPEN_CLIENTS: list[aioredis.Redis] = []


@pytest.fixture(autouse=True)
async def _close_redis_clients() -> AsyncIterator[None]:
    """Close the clients a test's ``RedisStore`` factories opened, on the test's own loop."""
    yield
    while _OPEN_CLIENTS:
        await _OPEN_CLIENTS.pop().aclose()


#: Every ``LimiterStore`` the guarantees must hold for; a new store is appended here.
STORES: list[Callable[[], LimiterStore]] = [InProcessStore, RedisStore]
_STORE_IDS = [factory.__name__ for factory in STORES]


def _now() -> float:
    return asyncio.get_running_loop().time()


def _max_excess(times: Sequence[float], limits: ClassLimits) -> float:
    """The largest count - (burst + rate * T) over all windows [t_i, t_j] of completions."""
    ordered = sorted(times)
    worst = -math.inf
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            allowed = limits.max_starts(ordered[j] - start + _TIME_EPSILON)
            worst = max(worst, (j - i + 1) - allowed)
    return worst


async def _acquire_all(limiter: ClassLimiter, count: int) -> list[float]:
    """Start ``count`` concurrent acquisitions now; return their completion times."""
    return list(await asyncio.gather(*(limiter.acquire() for _ in range(count))))


# -- the guarantee ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """At loop time ``at``: a request arrives, or (``feedback``) a response is observed."""

    at: float
    feedback: tuple[int, RateLimitFeedback] | None = None


_FEEDBACK = st.tuples(
    st.sampled_from([200, 429, 503]),
    st.builds(
        RateLimitFeedback,
        limit=st.none() | st.floats(1, 10_000),
        remaining=st.none() | st.integers(0, 40),
        reset_after=st.none() | st.floats(0, 3),
        retry_after=st.none() | st.floats(0, 3),
    ),
)
_EVENTS = st.lists(
    st.builds(_Event, at=st.floats(0, 5, allow_subnormal=False), feedback=st.none() | _FEEDBACK),
    min_size=1,
    max_size=60,
)


async def _run_pattern(limiter: ClassLimiter, events: list[_Event]) -> list[float]:
    completions: list[float] = []

    async def request(at: float) -> None:
        await asyncio.sleep(at)
        completions.append(await limiter.acquire())

    async def respond(at: float, status: int, feedback: RateLimitFeedback) -> None:
        await asyncio.sleep(at)
        await limiter.observe(status, feedback)

    async with asyncio.TaskGroup() as group:
        for event in events:
            if event.feedback is None:
                group.create_task(request(event.at))
            else:
                group.create_task(respond(event.at, *event.feedback))
    return completions


@pytest.mark.looptime
@pytest.mark.parametrize("make_store", STORES, ids=_STORE_IDS)
@settings(max_examples=150, deadline=None)
@given(
    burst=st.integers(1, 12),
    per_second=st.floats(0.5, 50),
    start=st.sampled_from(["conservative", "full"]),
    events=_EVENTS,
)
async def test_never_more_than_burst_plus_rate_times_interval(
    make_store: Callable[[], LimiterStore],
    burst: int,
    per_second: float,
    start: str,
    events: list[_Event],
) -> None:
    """In any window of length T at most burst + rate * T acquisitions complete, any feedback."""
    limits = ClassLimits(Rate(per_second, 1.0), burst=burst)
    limiter = ClassLimiter(
        limits, start="full" if start == "full" else "conservative", store=make_store()
    )
    completions = await _run_pattern(limiter, events)
    assert len(completions) == sum(1 for event in events if event.feedback is None)
    assert _max_excess(completions, limits) <= 1e-9


def _conformant(arrivals: list[float], capacity: int, rate: float) -> list[float]:
    """The arrivals a full bucket of ``capacity`` at ``rate`` accepts (the others dropped).

    A token must be there with a microsecond to spare: looptime moves in microseconds.
    """
    kept: list[float] = []
    tokens, stamp = float(capacity), 0.0
    for at in sorted(arrivals):
        tokens = min(float(capacity), tokens + (at - stamp) * rate)
        stamp = at
        if tokens >= 1.0 + 1e-6 * rate:
            tokens -= 1.0
            kept.append(at)
    return kept


# Benign feedback: plain successes, some advertising a limit at or above the configured one.
_BENIGN = st.none() | st.floats(1.0, 4.0)  # advertised limit, as a multiple of the config


@pytest.mark.looptime
@pytest.mark.parametrize("make_store", STORES, ids=_STORE_IDS)
@settings(max_examples=80, deadline=None)
@given(
    burst=st.integers(1, 12),
    per_second=st.floats(0.5, 50),
    arrivals=st.lists(st.floats(0, 5, allow_subnormal=False), min_size=1, max_size=40),
    advertised=st.lists(_BENIGN, min_size=40, max_size=40),
)
async def test_conformant_client_is_never_delayed(
    make_store: Callable[[], LimiterStore],
    burst: int,
    per_second: float,
    arrivals: list[float],
    advertised: list[float | None],
) -> None:
    """start="full": arrivals a bucket of (burst - margin, rate) accepts are granted on arrival."""
    limits = ClassLimits(Rate(per_second, 1.0), burst=burst)
    limiter = ClassLimiter(limits, start="full", store=make_store())
    capacity = burst - jitter_margin(limits)
    delays: list[float] = []
    start = _now()  # hypothesis runs every example on the same loop: time does not restart

    async def request(at: float, multiple: float | None) -> None:
        await asyncio.sleep(at)
        ticket = await limiter.acquire()
        delays.append(ticket - start - at)
        limit = None if multiple is None else multiple * per_second * 60.0
        await limiter.observe(200, RateLimitFeedback(limit=limit), ticket=ticket)

    async with asyncio.TaskGroup() as group:
        for at, multiple in zip(
            _conformant(arrivals, capacity, per_second), advertised, strict=False
        ):
            group.create_task(request(at, multiple))
    assert max(delays, default=0.0) <= _delay_tolerance(make_store)


def _delay_tolerance(make_store: Callable[[], LimiterStore]) -> float:
    """Loop seconds a granted request may lag its arrival. In process: none. With Redis the
    loop clock keeps running through each round trip (see ``_LooptimeRedisStore``), and this
    process's waiters queue behind one another's trips; that the script itself grants every
    conformant arrival exactly is ``test_redis_script_grants_conformant_arrivals_at_once``.
    """
    return 1e-5 if make_store is InProcessStore else 0.05


@settings(max_examples=60, deadline=None)
@given(
    burst=st.integers(1, 12),
    per_second=st.floats(0.5, 50),
    arrivals=st.lists(st.floats(0, 5, allow_subnormal=False), min_size=1, max_size=40),
)
async def test_redis_script_grants_conformant_arrivals_at_once(
    burst: int, per_second: float, arrivals: list[float]
) -> None:
    """The Lua script, asked at each conformant arrival's own time, never refuses one; and a
    request one token beyond the burst at the same instant is refused (no waiting involved:
    each call is one run of the script at a time the test sets)."""
    now = [0.0]
    server = shared_server()
    client = aioredis.Redis.from_url(server.url)
    try:
        store = redis_store.RedisStore(
            client, address=server.address, namespace=f"t{uuid.uuid4().hex}", clock=lambda: now[0]
        )
        spec = BucketSpec(burst, per_second)
        store.register("k", spec, AimdState.initial(per_second))
        for at in _conformant(arrivals, burst, per_second):
            now[0] = at
            reply = await store._run("k", "acquire", "1.0")  # one script run, no retry
            assert reply.granted, at
            assert reply.now == at
        store.register("b", spec, AimdState.initial(per_second))
        now[0] = 100.0
        granted = [(await store._run("b", "acquire", "1.0")).granted for _ in range(burst + 1)]
        assert granted == [True] * burst + [False]
    finally:
        await client.aclose()


# -- start modes --------------------------------------------------------------------------

LIMITS = ClassLimits(Rate(10, 1.0), burst=5)  # 10/s, burst 5: a token every 0.1 s


@pytest.mark.looptime
async def test_full_start_gives_exactly_burst_at_once() -> None:
    """start="full": exactly burst acquisitions complete at t=0, the next after 1/rate."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    times = await _acquire_all(limiter, 7)
    assert times == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2])


@pytest.mark.looptime
async def test_jitter_margin_holds_back_part_of_the_burst_only() -> None:
    """The default margin (rate x 50 ms, at least 1) shortens the burst, not the sustained rate."""
    limits = ClassLimits(Rate(100, 1.0), burst=20)  # margin ceil(100 * 0.05) = 5
    limiter = ClassLimiter(limits, start="full")
    times = await _acquire_all(limiter, 25)
    assert times[:15] == pytest.approx([0.0] * 15)
    assert times[15:] == pytest.approx([0.01 * k for k in range(1, 11)])


@pytest.mark.parametrize(
    ("rate", "burst", "margin"),
    [(100 / 60, 20, 1), (100.0, 20, 5), (1000.0, 20, 19), (5.0, 1, 0), (5.0, 2, 1)],
)
def test_jitter_margin_sizes(rate: float, burst: int, margin: int) -> None:
    """The margin is ceil(rate x 50 ms), at least 1, and always leaves one token of burst."""
    assert jitter_margin(ClassLimits(Rate(rate, 1.0), burst=burst)) == margin


@pytest.mark.looptime
async def test_conservative_start_paces_from_the_first_request() -> None:
    """The default start lets one request go at once, then paces at the sustained rate."""
    limiter = ClassLimiter(LIMITS, margin=0)
    times = await _acquire_all(limiter, 4)
    assert times == pytest.approx([0, 0.1, 0.2, 0.3])


@pytest.mark.looptime
async def test_conservative_start_adopts_first_remaining() -> None:
    """The first Remaining replaces the conservative guess: the server's tokens become usable."""
    limiter = ClassLimiter(LIMITS, margin=0)
    await limiter.acquire()
    await limiter.observe(200, RateLimitFeedback(remaining=4))
    times = await _acquire_all(limiter, 5)
    assert times == pytest.approx([0, 0, 0, 0, 0.1])


@pytest.mark.looptime
async def test_conservative_first_sync_keeps_in_flight_requests_spent() -> None:
    """Requests still unanswered at the first sync stay counted against the burst."""
    limiter = ClassLimiter(LIMITS, margin=0)
    await _acquire_all(limiter, 3)  # t = 0, 0.1, 0.2; none answered yet
    await limiter.observe(200, RateLimitFeedback(remaining=4))  # the first one's answer
    # level = 5 - 4 + 2 in flight = 3, minus 0 leaked: two more at once.
    times = await _acquire_all(limiter, 3)
    assert times == pytest.approx([0.2, 0.2, 0.3])


# -- server feedback ----------------------------------------------------------------------


@pytest.mark.looptime
async def test_remaining_shrinks_the_budget() -> None:
    """Remaining=r leaves us at most r immediate acquisitions even with a full local bucket."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(200, RateLimitFeedback(remaining=2))
    times = await _acquire_all(limiter, 4)
    assert times == pytest.approx([0, 0, 0.1, 0.2])


@pytest.mark.looptime
async def test_remaining_never_grants_more_than_we_believe() -> None:
    """A later, larger Remaining (or one above our burst) does not refill our bucket."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await _acquire_all(limiter, 5)
    await limiter.observe(200, RateLimitFeedback(remaining=4))
    await limiter.observe(200, RateLimitFeedback(remaining=500))
    times = await _acquire_all(limiter, 2)
    assert times == pytest.approx([0.1, 0.2])


@pytest.mark.looptime
async def test_retry_after_pauses_every_waiter_of_the_class() -> None:
    """A 429 with Retry-After closes one shared gate: every waiter starts after it opens."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await _acquire_all(limiter, 5)
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(4)]
    await asyncio.sleep(0.05)
    await limiter.observe(429, RateLimitFeedback(retry_after=3.0))
    assert limiter.statistics().paused_until == pytest.approx(3.05)
    times = await asyncio.gather(*waiters)
    assert min(times) == pytest.approx(3.05)
    assert limiter.statistics().paused_until is None
    assert limiter.statistics().throttled == 1


@pytest.mark.looptime
async def test_reset_pauses_when_there_is_no_retry_after() -> None:
    """A 429 carrying only Reset pauses the class until the reset."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(429, RateLimitFeedback(remaining=0, reset_after=2.0))
    assert await limiter.acquire() == pytest.approx(2.0)


@pytest.mark.looptime
async def test_pause_is_capped_and_never_shortened() -> None:
    """A huge Retry-After pauses at most max_pause; a later shorter one does not cut it."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full", max_pause=10.0)
    await limiter.observe(429, RateLimitFeedback(retry_after=3600.0))
    await limiter.observe(429, RateLimitFeedback(retry_after=1.0))
    assert limiter.paused_until == pytest.approx(10.0)
    assert await limiter.acquire() == pytest.approx(10.0)


@pytest.mark.looptime
async def test_advertised_lower_limit_is_adopted() -> None:
    """X-RateLimit-Limit below the configured rate becomes our rate; above it is ignored."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(200, RateLimitFeedback(limit=300.0))  # 300/min = 5/s
    assert limiter.statistics().current_rate == pytest.approx(5.0)
    await limiter.observe(200, RateLimitFeedback(limit=6000.0))  # 100/s: more than configured
    assert limiter.statistics().ceiling_rate == pytest.approx(10.0)


@pytest.mark.looptime
async def test_throttled_flag_treats_a_bare_503_as_429() -> None:
    """throttled=True (an nginx-style 503 refusal) counts as a throttle; plain 503 does not."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(503, NO_FEEDBACK)
    assert limiter.statistics().throttled == 0
    await limiter.observe(503, NO_FEEDBACK, throttled=True)
    assert limiter.statistics().throttled == 1


# -- AIMD ---------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_bare_429_halves_the_rate_once_per_event() -> None:
    """A burst of bare 429s for requests sent before the decrease is one multiplicative step."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    tickets = await _acquire_all(limiter, 5)
    for ticket in tickets:
        await limiter.observe(429, NO_FEEDBACK, ticket=ticket)
    stats = limiter.statistics()
    assert (stats.current_rate, stats.decreases, stats.throttled) == (5.0, 1, 5)
    assert stats.ceiling_rate == pytest.approx(9.5)
    assert stats.level == pytest.approx(5.0)  # the server's bucket is empty: no burst now


@pytest.mark.looptime
async def test_ticketless_429s_within_cooldown_are_one_event() -> None:
    """Without tickets, 429s within decrease_cooldown seconds count as one decrease."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(429, NO_FEEDBACK)
    await limiter.observe(429, NO_FEEDBACK)
    await asyncio.sleep(1.0)
    await limiter.observe(429, NO_FEEDBACK)
    assert limiter.statistics().decreases == 2
    assert limiter.statistics().current_rate == pytest.approx(2.5)


@pytest.mark.looptime
async def test_rate_floor() -> None:
    """Repeated decreases stop at min_rate_fraction of the configured rate."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    for _ in range(20):
        await limiter.observe(429, NO_FEEDBACK)
        await asyncio.sleep(1.0)
    assert limiter.statistics().current_rate == pytest.approx(0.5)


@pytest.mark.looptime
async def test_rate_recovers_additively_to_the_ceiling_then_probes() -> None:
    """Successes raise the rate 5 % per 10 up to the learned ceiling; a quiet spell lifts it."""
    limiter = ClassLimiter(LIMITS, margin=0, start="full")
    await limiter.observe(429, NO_FEEDBACK)
    for _ in range(10):
        await limiter.observe(200, NO_FEEDBACK)
    assert limiter.statistics().current_rate == pytest.approx(5.5)
    for _ in range(200):
        await limiter.observe(200, NO_FEEDBACK)
    assert limiter.statistics().current_rate == pytest.approx(9.5)
    await asyncio.sleep(AimdSettings().probe_interval)
    for _ in range(10):
        await limiter.observe(200, NO_FEEDBACK)
    assert limiter.statistics().current_rate == pytest.approx(10.0)


def test_aimd_settings_are_validated() -> None:
    """Factors outside (0, 1] or a zero increase are refused at construction."""
    with pytest.raises(ValueError, match="AIMD"):
        AimdSettings(decrease_factor=1.5)
    with pytest.raises(ValueError, match="AIMD"):
        AimdSettings(increase_after=0)


# -- convergence against a stricter server -----------------------------------------------


class _StrictServer:
    """A token bucket server stricter than our configuration (refusals take no token)."""

    def __init__(self, limits: ClassLimits, *, with_headers: bool) -> None:
        self.capacity = float(limits.burst)
        self.rate = limits.rate.per_second
        self.with_headers = with_headers
        self.tokens = self.capacity
        self.stamp = 0.0
        self.admitted: list[float] = []
        self.refused: list[float] = []

    def handle(self, now: float) -> tuple[int, RateLimitFeedback]:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens + 1e-9 >= 1.0:
            self.tokens = max(0.0, self.tokens - 1.0)
            self.admitted.append(now)
            return 200, NO_FEEDBACK
        self.refused.append(now)
        if not self.with_headers:
            return 429, NO_FEEDBACK
        return 429, RateLimitFeedback(retry_after=(1.0 - self.tokens) / self.rate)


async def _drive(limiter: ClassLimiter, server: _StrictServer, *, until: float) -> None:
    async def worker() -> None:
        while _now() < until:
            ticket = await limiter.acquire()
            await asyncio.sleep(0.02)  # network latency
            status, feedback = server.handle(_now())
            await limiter.observe(status, feedback, ticket=ticket)

    async with asyncio.TaskGroup() as group:
        for _ in range(8):
            group.create_task(worker())


@pytest.mark.looptime
@pytest.mark.parametrize("with_headers", [False, True], ids=["bare-429", "retry-after"])
async def test_converges_to_a_stricter_servers_rate(with_headers: bool) -> None:
    """Configured 20/s against a server granting 10/s: we settle within 10 % and 429s stop."""
    configured = ClassLimits(Rate(20, 1.0), burst=10)
    server = _StrictServer(ClassLimits(Rate(10, 1.0), burst=5), with_headers=with_headers)
    limiter = ClassLimiter(configured)
    await _drive(limiter, server, until=120.0)
    late = [t for t in server.admitted if t >= 60.0]
    achieved = len(late) / (120.0 - 60.0)
    assert achieved == pytest.approx(10.0, rel=0.10)
    assert [t for t in server.refused if t >= 60.0] == []
    assert len(server.refused) <= 10
    stats = limiter.statistics()
    assert stats.ceiling_rate <= 10.0 + 1e-9
    assert stats.throttled == len(server.refused)


# -- the store seam -----------------------------------------------------------------------


#: The one bucket the store tests use: capacity 5, 10 tokens a second.
KEY = "k"


@pytest.fixture(params=STORES, ids=_STORE_IDS)
def store(request: pytest.FixtureRequest) -> LimiterStore:
    """Each ``LimiterStore`` of ``STORES`` in turn, with ``KEY`` registered."""
    made: LimiterStore = request.param()
    made.register(KEY, BucketSpec(5, 10.0), AimdState.initial(10.0))
    return made


@pytest.mark.looptime
async def test_store_fill_raises_and_never_lowers(store: LimiterStore) -> None:
    """fill takes tokens without waiting, caps at capacity and never gives any back."""
    await store.fill(KEY, 3.0)
    await store.fill(KEY, 1.0)
    assert store.snapshot(KEY).level == pytest.approx(3.0)
    await store.fill(KEY, 50.0)
    assert store.snapshot(KEY).level == pytest.approx(5.0)
    assert await store.acquire(KEY) == pytest.approx(0.1)


@pytest.mark.looptime
async def test_store_reset_level_is_floored_by_the_configured_rate(store: LimiterStore) -> None:
    """reset_level can lower the level, never below what grants at the configured rate left."""
    for _ in range(4):
        await store.acquire(KEY)
    await store.fill(KEY, 5.0)
    await store.reset_level(KEY, 0.0)
    assert store.snapshot(KEY).level == pytest.approx(4.0)


@pytest.mark.looptime
async def test_store_rate_change_retimes_a_waiter(store: LimiterStore) -> None:
    """A waiter already queued is granted at the new rate, not the one it queued under."""
    await store.fill(KEY, 5.0)
    waiter = asyncio.create_task(store.acquire(KEY))
    await asyncio.sleep(0.05)  # half a token leaked at 10/s
    await store.adapt(KEY, lambda state, _now: AimdState.initial(100.0))  # 0.005 s to go
    assert await waiter == pytest.approx(0.055)


@pytest.mark.looptime
async def test_store_pause_is_never_shortened(store: LimiterStore) -> None:
    """pause extends the deadline, reports what is left, and nothing is granted before it."""
    assert await store.pause(KEY, 2.0) == pytest.approx(2.0)
    assert await store.pause(KEY, 1.0) == pytest.approx(2.0)
    assert await store.acquire(KEY) == pytest.approx(2.0)


@pytest.mark.looptime
async def test_store_cancelled_waiter_takes_no_token(store: LimiterStore) -> None:
    """Cancelling a waiting acquire leaves its token for the next one."""
    await store.fill(KEY, 5.0)
    first = asyncio.create_task(store.acquire(KEY))
    second = asyncio.create_task(store.acquire(KEY))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == pytest.approx(0.1)


# -- the per-token set --------------------------------------------------------------------


@pytest.mark.looptime
async def test_limiter_set_has_one_limiter_per_class() -> None:
    """for_class returns the same limiter each time; classes do not share a bucket."""
    limiters = LimiterSet(DEFAULT_LIMITS, start="full")
    write = limiters.for_class(EndpointClass.WRITE)
    assert write is limiters.for_class(EndpointClass.WRITE)
    assert write is not limiters.for_class(EndpointClass.READ)
    await write.observe(429, RateLimitFeedback(retry_after=5.0))
    assert await limiters.for_class(EndpointClass.READ).acquire() == 0.0
    stats = limiters.statistics()
    assert stats[EndpointClass.WRITE].paused_until == pytest.approx(5.0)
    assert stats[EndpointClass.READ].configured_rate == pytest.approx(5.0)
    with pytest.raises(TypeError):
        stats[EndpointClass.READ] = stats[EndpointClass.WRITE]  # type: ignore[index]


@pytest.mark.looptime
@pytest.mark.parametrize("make_store", STORES, ids=_STORE_IDS)
@pytest.mark.parametrize("order", ["faster-first", "slower-first"])
@pytest.mark.parametrize("stores", ["one-store", "store-per-run"])
async def test_each_user_of_a_shared_bucket_keeps_to_its_own_configured_rate(
    make_store: Callable[[], LimiterStore], order: str, stores: str
) -> None:
    """Two runs of one token configured with different limits (two jobs of an organisation,
    one after the other, in one worker process or two): each keeps to its own rate and
    burst, whichever ran first; neither is carried at the other's rate by what they share."""
    store = make_store()
    fast = ClassLimits(Rate(100.0, 1.0), burst=5)
    slow = ClassLimits(Rate(20.0, 1.0), burst=5)
    runs = [fast, slow] if order == "faster-first" else [slow, fast]
    for limits in runs:
        if stores == "store-per-run" and isinstance(store, redis_store.RedisStore):
            # Another process on the same Redis key (a fresh client, the same namespace).
            store = _LooptimeRedisStore(
                aioredis.Redis.from_url(shared_server().url),
                address=store._address,
                namespace=store._namespace,
                clock=_now,
            )
            _OPEN_CLIENTS.append(store._client)
        limiter = ClassLimiter(limits, start="full", store=store, key="tok:write")
        completions = await _acquire_all(limiter, 60)
        assert _max_excess(completions, limits) <= 1e-9, (limits, order)
        # And not held to the other's slower rate either: 60 grants from a full bucket take
        # at most (60 - 1) / rate.
        span = max(completions) - min(completions)
        assert span <= (60 - 1) / limits.rate.per_second + 1e-3, (limits, order)
        await asyncio.sleep(1.0)  # the bucket drains between the two runs
