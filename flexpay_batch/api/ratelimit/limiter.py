"""Client-side rate limiting per (token, endpoint class), kept in step with the server.

    limiters = LimiterSet(settings.limits)
    limiter = limiters.for_class(EndpointClass.WRITE)
    ticket = await limiter.acquire()
    ... send the request ...
    await limiter.observe(response.status, parse_feedback(...), ticket=ticket)

**Guarantee.** A ``ClassLimiter`` built from ``ClassLimits(rate, burst)`` lets at most
``burst + rate.per_second * T`` acquisitions complete in *any* interval of length ``T``
seconds, whatever the server says and whatever the adaptation below does: every adjustment
only ever makes it stricter (fuller bucket, slower leak, pause), never looser than the
configuration. A client whose requests conform to a bucket of ``burst - margin`` tokens
refilled at ``rate`` is never delayed (with ``start="full"`` and no throttling feedback).
The property tests in ``tests/api/test_limits.py`` check both, for every store.

**Burst semantics.** The bucket holds ``burst - margin`` tokens (``margin`` is the jitter
margin below) and refills one token every ``1 / rate`` seconds. Unlike a bare
``AsyncLimiter(max_rate, time_period)`` — whose capacity is ``max_rate``, so
``AsyncLimiter(10, 60)`` lets 20 through in its first minute — the burst here is the
server's burst, named as such, and the sustained rate is separate from it.

**Model.** The bucket lives in a ``LimiterStore`` (``store.py``; ``InProcessStore`` by
default: aiolimiter's leaky-bucket arithmetic). Its *level* is "tokens the server's bucket is
missing", so ``capacity - level`` is what we believe we may send at once. The adaptive rate is
the pure policy in ``aimd.py``; this class turns server feedback into store operations.

**Conservative start.** By default the bucket starts one request short of full: the first
request goes at once (we must ask to learn anything), the next ones follow at the sustained
rate. A resumed run therefore never bursts into a server window the previous run half spent.
The first response with a ``Remaining`` header replaces that guess with the server's number
(minus our requests still in flight); after that server numbers can only make us stricter.
``start="full"`` starts empty instead: exactly ``burst - margin`` acquisitions complete at once.

**Server feedback** (``observe``, awaited once per response by whichever worker got it):

- ``Remaining = r``: level ≥ ``burst - r`` — never believe we have more tokens than the
  server says. A server with a bigger bucket (``r > burst``) changes nothing; one with a
  smaller bucket is followed response by response, and any overshoot ends in a 429 below.
- ``X-RateLimit-Limit`` below the configured rate (per ``header_limit_period``, a minute in
  the contract): adopted as the ceiling of the sustained rate; never raised above the
  configuration.
- 429 (or any response the caller flags ``throttled=True``, e.g. an nginx-style bare 503):
  the server's bucket is empty, so the level goes to capacity. With ``Retry-After`` (else
  ``Reset``) the whole class is paused until then in the store, capped at ``max_pause``.
- AIMD on every 429, whether it had headers or not (headers can promise more than the
  server grants), one decrease per burst of 429s (the ``ticket``); successes raise the rate
  back additively up to the learned ceiling (``aimd.py`` has the rules and constants).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Literal

from flexpay_batch.api.headers import RateLimitFeedback
from flexpay_batch.api.ratelimit.aimd import AimdSettings, AimdState
from flexpay_batch.api.ratelimit.inprocess import InProcessStore
from flexpay_batch.api.ratelimit.store import Adaptation, BucketSpec, LimiterStore
from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings

Start = Literal["conservative", "full"]

#: Seconds of arrival jitter the client leaves room for (see ``jitter_margin``).
JITTER_ALLOWANCE = 0.05

#: Default cap, in seconds, on a pause the server asks for (Retry-After or Reset).
DEFAULT_MAX_PAUSE = 300.0


def jitter_margin(limits: ClassLimits) -> int:
    """Tokens of the burst held back so network and event-loop jitter cannot cause a 429.

    Requests that leave us conformant arrive at the server shifted by varying delays; with
    arrival jitter J the server sees up to ``rate * J`` more in a window than we sent. Running
    saturated (the bucket always nearly full) that is a 429 per jitter spike, so the local
    bucket is ``burst - margin`` deep with ``margin = ceil(rate * JITTER_ALLOWANCE)`` (at
    least 1, leaving at least 1). It costs ``margin / rate`` seconds once, at the start, and
    nothing in sustained throughput.
    """
    wanted = max(1, math.ceil(limits.rate.per_second * JITTER_ALLOWANCE))
    return max(0, min(limits.burst - 1, wanted))


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A snapshot of one class limiter. Rates in requests per second, times in loop seconds.

    ``level`` is the bucket level (tokens the server is believed to be missing, ``0`` =
    full burst available), ``paused_until`` the loop time the pause ends (``None`` when
    not paused), ``throttled`` the 429s observed, ``decreases``/``increases`` the AIMD steps
    taken (by every process sharing the store), ``acquired`` and ``waiting`` this process's.
    """

    configured_rate: float
    current_rate: float
    ceiling_rate: float
    burst: int
    level: float
    paused_until: float | None
    throttled: int
    decreases: int
    increases: int
    acquired: int
    waiting: int


class ClassLimiter:
    """Burst + sustained limiter of one endpoint class of one token, fed by server feedback.

        limiter = ClassLimiter(ClassLimits(Rate(100, 60), burst=20))
        async with limiter:
            ...  # at most 20 + 100/60 * T requests start in any T seconds

    See the module docstring for the guarantee, the conservative start and the feedback
    rules. One instance is shared by every worker of the class; it must be used from one
    event loop. ``store`` keeps the bucket under ``key`` (a private ``InProcessStore`` by
    default); limiters of other processes using the same store and key share it.
    """

    __slots__ = (
        "_acquired",
        "_aimd",
        "_capacity",
        "_first_sync_pending",
        "_header_limit_period",
        "_key",
        "_local",
        "_max_pause",
        "_observed",
        "_store",
        "_success_after_limit",
        "_success_limit",
        "_throttled",
        "limits",
    )

    def __init__(
        self,
        limits: ClassLimits,
        *,
        start: Start = "conservative",
        aimd: AimdSettings | None = None,
        max_pause: float = DEFAULT_MAX_PAUSE,
        header_limit_period: float = 60.0,
        margin: int | None = None,
        store: LimiterStore | None = None,
        key: str = "default",
    ) -> None:
        """``max_pause`` caps a server-requested pause (seconds); ``header_limit_period`` is
        the period ``X-RateLimit-Limit`` counts over (60 s in the contract); ``margin`` is
        the number of burst tokens held back (default ``jitter_margin(limits)``)."""
        if start not in ("conservative", "full"):
            raise ValueError("start is 'conservative' or 'full'")
        if max_pause < 0:
            raise ValueError("max_pause must not be negative")
        self.limits = limits
        self._aimd = aimd or AimdSettings()
        self._max_pause = max_pause
        self._header_limit_period = header_limit_period
        held_back = jitter_margin(limits) if margin is None else margin
        if not 0 <= held_back < limits.burst:
            raise ValueError("margin must leave at least one token of the burst")
        self._capacity = limits.burst - held_back
        initial = float(self._capacity - 1) if start == "conservative" else 0.0
        self._store: LimiterStore = store if store is not None else InProcessStore()
        #: The store again when it answers without I/O: the usual request's grant and
        #: feedback are then plain calls (``try_acquire``, ``observe_nowait``). Exactly an
        #: ``InProcessStore``: a subclass may redefine its async operations.
        self._local = self._store if type(self._store) is InProcessStore else None
        self._key = key
        spec = BucketSpec(self._capacity, limits.rate.per_second, initial_level=initial)
        self._store.register(key, spec, AimdState.initial(limits.rate.per_second))
        self._first_sync_pending = start == "conservative"
        self._acquired = 0
        self._observed = 0
        self._throttled = 0
        self._success_limit: float | None = None
        self._success_after_limit: Adaptation = self._aimd.on_success

    # -- acquiring ------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait until a request may start; return its ticket (the store time it was granted).

        Waits for any pause to end, then for a token. Pass the ticket to ``observe`` so one
        burst of 429s counts as one AIMD decrease.
        """
        ticket = await self._store.acquire(self._key)
        self._acquired += 1
        return ticket

    def try_acquire(self) -> float | None:
        """The ticket ``acquire`` would return at once, or ``None`` (nothing taken) when it
        would have to wait or the store is not in process: then await ``acquire``."""
        local = self._local
        if local is None:
            return None
        ticket = local.acquire_now(self._key)
        if ticket is not None:
            self._acquired += 1
        return ticket

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- feedback -------------------------------------------------------------------------

    async def observe(
        self,
        status: int,
        feedback: RateLimitFeedback,
        *,
        ticket: float | None = None,
        throttled: bool | None = None,
    ) -> None:
        """Learn from one response of this class (any worker's); see the module docstring.

        ``status`` is the HTTP status, ``feedback`` its parsed headers, ``ticket`` what
        ``acquire`` returned for that request, and ``throttled`` overrides "status is 429"
        (pass True for an nginx-style bare 503 refusal). Never raises for odd feedback.
        """
        self._observed += 1
        is_throttle = status == 429 if throttled is None else throttled
        if not is_throttle and status < 500:
            # Nearly every response: the advertised limit and the success are one atomic
            # ``adapt`` (both change only the adaptive state; the fill between them only the
            # level), so one store operation instead of two.
            await self._sync_remaining(feedback.remaining)
            await self._store.adapt(self._key, self._success_change(feedback.limit))
            return
        await self._adopt_limit(feedback.limit)
        await self._sync_remaining(feedback.remaining)
        if is_throttle:
            await self._on_throttle(feedback, ticket)

    def observe_nowait(
        self,
        status: int,
        feedback: RateLimitFeedback,
        *,
        throttled: bool | None = None,
    ) -> bool:
        """``observe`` done here and now, for the usual response (neither a throttle nor a
        5xx) when the store is in process; False, having done nothing, otherwise: then await
        ``observe``. The same steps as ``observe``, without its coroutines."""
        local = self._local
        if local is None or status >= 500 or (status == 429 if throttled is None else throttled):
            return False
        self._observed += 1
        update = self._level_from_remaining(feedback.remaining)
        if update is not None:
            level, replaces = update
            (local.reset_level_now if replaces else local.fill_now)(self._key, level)
        local.adapt_now(self._key, self._success_change(feedback.limit))
        return True

    def _success_change(self, per_period: float | None) -> Adaptation:
        """``adopt_limit`` of the advertised limit (if any), then ``on_success``; the change
        for the last limit seen is kept (a server advertises the same one every time)."""
        if per_period is None or per_period <= 0:
            return self._aimd.on_success
        if per_period != self._success_limit:
            aimd, advertised = self._aimd, per_period / self._header_limit_period
            self._success_limit = per_period
            self._success_after_limit = lambda state, now: aimd.on_success(
                aimd.adopt_limit(state, advertised), now
            )
        return self._success_after_limit

    async def _adopt_limit(self, per_period: float | None) -> None:
        if per_period is None or per_period <= 0:
            return
        advertised = per_period / self._header_limit_period
        await self._store.adapt(
            self._key, lambda state, _now: self._aimd.adopt_limit(state, advertised)
        )

    async def _sync_remaining(self, remaining: int | None) -> None:
        update = self._level_from_remaining(remaining)
        if update is None:
            return
        level, replaces = update
        if replaces:
            await self._store.reset_level(self._key, level)
        else:
            await self._store.fill(self._key, level)

    def _level_from_remaining(self, remaining: int | None) -> tuple[float, bool] | None:
        """The level a server's ``X-RateLimit-Remaining`` means, and whether it replaces ours
        (True, once: the first one) or may only raise it (a fill); None without the header."""
        if remaining is None:
            return None
        missing = float(self.limits.burst - remaining)
        if self._first_sync_pending:
            # Replace the conservative guess once; our requests still in flight may not be in
            # the server's count yet, so they stay spent.
            self._first_sync_pending = False
            in_flight = max(0, self._acquired - self._observed)
            return missing + in_flight, True
        return missing, False

    async def _on_throttle(self, feedback: RateLimitFeedback, ticket: float | None) -> None:
        self._throttled += 1
        self._first_sync_pending = False
        await self._store.fill(self._key, float(self._capacity))
        wait = feedback.wait_hint
        if wait is not None and wait > 0:
            await self._store.pause(self._key, min(wait, self._max_pause))
        await self._store.adapt(self._key, partial(self._aimd.on_throttle, ticket=ticket))

    # -- introspection --------------------------------------------------------------------

    @property
    def paused_until(self) -> float | None:
        """Loop time at which the pause ends, or ``None`` when not paused."""
        left = self._store.snapshot(self._key).pause_left
        return None if left <= 0 else asyncio.get_running_loop().time() + left

    def statistics(self) -> LimiterStatistics:
        """An immutable snapshot (see ``LimiterStatistics``); call it on the limiter's loop."""
        snap = self._store.snapshot(self._key)
        paused_until = None
        if snap.pause_left > 0:
            paused_until = asyncio.get_running_loop().time() + snap.pause_left
        return LimiterStatistics(
            configured_rate=self.limits.rate.per_second,
            current_rate=snap.aimd.rate,
            ceiling_rate=snap.aimd.ceiling_rate,
            burst=self.limits.burst,
            level=snap.level,
            paused_until=paused_until,
            throttled=self._throttled,
            decreases=snap.aimd.decreases,
            increases=snap.aimd.increases,
            acquired=self._acquired,
            waiting=snap.waiting,
        )


class LimiterSet:
    """One ``ClassLimiter`` per endpoint class for one token, built from ``LimitSettings``.

    Keys in ``store`` are ``"{scope}:{endpoint class}"``; a shared store wants ``scope`` to
    be the token's fingerprint so two tokens never share a bucket.
    """

    __slots__ = ("_limiters",)

    def __init__(
        self,
        settings: LimitSettings,
        *,
        start: Start = "conservative",
        aimd: AimdSettings | None = None,
        max_pause: float = DEFAULT_MAX_PAUSE,
        header_limit_period: float = 60.0,
        store: LimiterStore | None = None,
        scope: str = "local",
    ) -> None:
        shared = store if store is not None else InProcessStore()
        self._limiters = {
            endpoint_class: ClassLimiter(
                settings.for_class(endpoint_class),
                start=start,
                aimd=aimd,
                max_pause=max_pause,
                header_limit_period=header_limit_period,
                store=shared,
                key=f"{scope}:{endpoint_class.value}",
            )
            for endpoint_class in EndpointClass
        }

    def for_class(self, endpoint_class: EndpointClass) -> ClassLimiter:
        """The limiter shared by every request of ``endpoint_class``."""
        return self._limiters[endpoint_class]

    def statistics(self) -> Mapping[EndpointClass, LimiterStatistics]:
        """A read-only snapshot of every class limiter."""
        return MappingProxyType({cls: lim.statistics() for cls, lim in self._limiters.items()})
