"""Client-side rate limiting per (token, endpoint class), kept in step with the server.

    limiters = LimiterSet(settings.limits)
    limiter = limiters.for_class(EndpointClass.WRITE)
    ticket = await limiter.acquire()
    ... send the request ...
    limiter.observe(response.status, parse_feedback(...), ticket=ticket)

**Guarantee.** A ``ClassLimiter`` built from ``ClassLimits(rate, burst)`` lets at most
``burst + rate.per_second * T`` acquisitions complete in *any* interval of length ``T``
seconds, whatever the server says and whatever the adaptation below does: every adjustment
only ever makes it stricter (fuller bucket, slower leak, closed gate), never looser than the
configuration. The property test in ``tests/test_limits.py`` checks exactly this.

**Model.** An ``aiolimiter.AsyncLimiter`` leaky bucket with capacity ``burst`` (less a small
``jitter_margin``, so arrival jitter cannot turn a conformant stream into 429s) that leaks at
the current sustained rate (``AsyncLimiter(burst, burst / rate.per_second)``). Its *level* is
"tokens the server's bucket is missing", so ``burst - level`` is what we believe we may send
at once. Time is the running event loop's clock (``loop.time()``), as in aiolimiter; tests run
under ``looptime``.

**Conservative start.** By default the bucket starts one request short of full: the first
request goes at once (we must ask to learn anything), the next ones follow at the sustained
rate. A resumed run therefore never bursts into a server window the previous run half spent.
The first response with a ``Remaining`` header replaces that guess with the server's number
(minus our requests still in flight); after that server numbers can only make us stricter.
``start="full"`` starts empty instead: exactly ``burst`` acquisitions complete at once.

**Server feedback** (``observe``, called once per response by whichever worker got it):

- ``Remaining = r``: level ≥ ``burst - r`` — never believe we have more tokens than the
  server says. A server with a bigger bucket (``r > burst``) changes nothing; one with a
  smaller bucket is followed response by response, and any overshoot ends in a 429 below.
- ``X-RateLimit-Limit`` below the configured rate (per ``header_limit_period``, a minute in
  the contract): adopted as the ceiling of the sustained rate; never raised above the
  configuration.
- 429 (or any response the caller flags ``throttled=True``, e.g. an nginx-style bare 503):
  the server's bucket is empty, so the level goes to ``burst``. With ``Retry-After`` (else
  ``Reset``) the whole class is paused until then through one shared gate, capped at
  ``max_pause``; every waiter of the class waits on that gate, not on its own timer.
- AIMD on every 429, whether it had headers or not (headers can promise more than the
  server grants): the sustained rate is multiplied by ``decrease_factor`` (0.5), floored at
  ``min_rate_fraction`` (5 %) of the configured rate, and the rate at which the 429 came,
  times ``ceiling_margin`` (0.95), becomes the new ceiling. The full bucket is the "brief
  pause": the next request waits one token at the new rate. Only one decrease per burst of
  429s: a 429 for a request acquired before the last decrease (its ``ticket``), or without
  a ticket less than ``decrease_cooldown`` seconds after it, is the same event.
- After ``increase_after`` (10) responses in a row that were not throttled and not 5xx the
  rate grows by ``increase_step`` (5 %) of the configured rate, up to the ceiling. Against a
  server stricter than configured the ceiling therefore walks down in 5 % steps until it sits
  at or just below the server's real rate, where 429s stop. After ``probe_interval`` seconds
  without a 429 the ceiling is raised by one step, so a limit that was only temporarily
  stricter is eventually forgotten (at the cost of at most one 429 per interval).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Literal

from aiolimiter import AsyncLimiter

from flexpay_batch.api.headers import RateLimitFeedback
from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings

Start = Literal["conservative", "full"]

#: Seconds of arrival jitter the client leaves room for (see ``jitter_margin``).
JITTER_ALLOWANCE = 0.05


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


#: Shortest bucket timer, in seconds (see ``_Bucket._wake_next``).
_MIN_TIMER = 1e-6


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """Constants of the adaptive rate (see the module docstring); rates are fractions.

    - ``decrease_factor``: multiply the current rate by this on a 429.
    - ``min_rate_fraction``: never below this fraction of the configured rate.
    - ``ceiling_margin``: the rate that drew a 429, times this, is the new ceiling.
    - ``increase_after``: unthrottled responses in a row before one additive step.
    - ``increase_step``: one step, as a fraction of the configured rate.
    - ``decrease_cooldown``: seconds during which ticket-less 429s count as one event.
    - ``probe_interval``: seconds without a 429 before the ceiling is raised a step.
    """

    decrease_factor: float = 0.5
    min_rate_fraction: float = 0.05
    ceiling_margin: float = 0.95
    increase_after: int = 10
    increase_step: float = 0.05
    decrease_cooldown: float = 1.0
    probe_interval: float = 300.0

    def __post_init__(self) -> None:
        fractions = (self.decrease_factor, self.min_rate_fraction, self.ceiling_margin)
        if not all(0.0 < value <= 1.0 for value in fractions):
            raise ValueError("AIMD factors, margin and floor must lie in (0, 1]")
        if self.increase_after < 1 or self.increase_step <= 0:
            raise ValueError("AIMD needs increase_after >= 1 and a positive increase_step")


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A snapshot of one class limiter. Rates in requests per second, times in loop seconds.

    ``level`` is the bucket level (tokens the server is believed to be missing, ``0`` =
    full burst available), ``paused_until`` the loop time the shared gate opens (``None`` when
    open), ``throttled`` the 429s observed, ``decreases``/``increases`` the AIMD steps taken.
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


class _Bucket(AsyncLimiter):
    """``AsyncLimiter`` whose leak rate and level can be adjusted from server feedback.

    aiolimiter keeps its state in ``_level``, ``_last_check`` and ``_rate_per_sec`` (stable
    since 1.0); we adjust exactly those and then call ``_wake_next`` so a waiter's timer is
    recomputed at once rather than when it would have fired under the old numbers.
    """

    __slots__ = ("_configured_rate", "_initial_level", "_natural", "_natural_at", "_primed")

    def __init__(self, burst: int, rate_per_second: float, *, initial_level: float) -> None:
        super().__init__(burst, burst / rate_per_second)
        self._configured_rate = rate_per_second
        self._initial_level = initial_level
        self._primed = False
        # The level a plain AsyncLimiter at the configured rate would have: our level never
        # goes below it, which is what keeps the burst + rate * T guarantee (module docstring).
        self._natural = 0.0
        self._natural_at = 0.0

    async def acquire(self, amount: float = 1) -> None:
        await super().acquire(amount)
        self._natural = self._natural_level() + amount
        self._natural_at = self._loop.time()

    def _natural_level(self) -> float:
        elapsed = self._loop.time() - self._natural_at
        return max(0.0, self._natural - elapsed * self._configured_rate)

    def _leak(self) -> None:
        if not self._primed:
            # Pre-fill lazily: aiolimiter measures the first leak from _last_check = 0.0, which
            # on a real loop clock would drain a level set in __init__ before anyone ran.
            self._primed = True
            self._level = self._initial_level
            self._last_check = self._loop.time()
        super()._leak()

    def _wake_next(self, *args: object) -> None:
        super()._wake_next(*args)
        handle = self._waker_handle
        if handle is None:
            return
        now = self._loop.time()
        if handle.when() - now < _MIN_TIMER:
            # Float noise can leave a waiter a billionth of a token short, so aiolimiter sets a
            # timer a few nanoseconds ahead. A clock that ticks in microseconds (looptime, some
            # platforms) would never reach it and spin; waking a microsecond later always
            # makes progress and errs on the strict side.
            handle.cancel()
            self._waker_handle = self._loop.call_at(now + _MIN_TIMER, self._wake_next)

    def current_level(self) -> float:
        self._leak()
        return self._level

    def raise_level(self, level: float) -> None:
        """Make the level at least ``level`` (capped at capacity): fewer tokens, never more."""
        self._leak()
        self._level = max(self._level, min(level, self.max_rate))
        self._wake_next()

    def set_level(self, level: float) -> None:
        """Replace the level (the one-time sync of the conservative start), never below what
        a plain limiter at the configured rate would hold."""
        self._leak()
        self._level = min(max(level, self._natural_level()), self.max_rate)
        self._wake_next()

    @property
    def rate(self) -> float:
        return self._rate_per_sec

    def set_rate(self, rate_per_second: float) -> None:
        """Leak at a new rate from now on (what has leaked so far stays leaked)."""
        self._leak()
        self._rate_per_sec = rate_per_second
        self.time_period = self.max_rate / rate_per_second
        self._wake_next()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())


class _Gate:
    """One shared "closed until loop time T" switch; every waiter of the class awaits it."""

    __slots__ = ("_handle", "_open", "until")

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._handle: asyncio.TimerHandle | None = None
        self.until: float | None = None

    def close_until(self, loop: asyncio.AbstractEventLoop, until: float) -> None:
        """Close the gate until ``until`` (loop time); an earlier time never shortens a pause."""
        if self.until is not None and until <= self.until:
            return
        self.until = until
        self._open.clear()
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(until, self._reopen)

    def _reopen(self) -> None:
        self._handle = None
        self.until = None
        self._open.set()

    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()


class ClassLimiter:
    """Burst + sustained limiter of one endpoint class of one token, fed by server feedback.

        limiter = ClassLimiter(ClassLimits(Rate(100, 60), burst=20))
        async with limiter:
            ...  # at most 20 + 100/60 * T requests start in any T seconds

    See the module docstring for the guarantee, the conservative start, the feedback rules
    and the AIMD constants. One instance is shared by every worker of the class; it must be
    used from one event loop (like aiolimiter).
    """

    __slots__ = (
        "_acquired",
        "_aimd",
        "_bucket",
        "_capacity",
        "_ceiling",
        "_ceiling_checked_at",
        "_decreases",
        "_first_sync_pending",
        "_gate",
        "_header_limit_period",
        "_increases",
        "_last_decrease",
        "_limit_cap",
        "_max_pause",
        "_observed",
        "_streak",
        "_throttled",
        "limits",
    )

    def __init__(
        self,
        limits: ClassLimits,
        *,
        start: Start = "conservative",
        aimd: AimdSettings | None = None,
        max_pause: float = 300.0,
        header_limit_period: float = 60.0,
        margin: int | None = None,
    ) -> None:
        """``max_pause`` caps a server-requested pause (seconds); ``header_limit_period`` is
        the period ``X-RateLimit-Limit`` counts over (60 s in the contract); ``margin`` is
        the number of burst tokens held back (default ``jitter_margin(limits)``)."""
        if start not in ("conservative", "full"):
            raise ValueError("start is 'conservative' or 'full'")
        self.limits = limits
        self._aimd = aimd or AimdSettings()
        self._max_pause = max_pause
        self._header_limit_period = header_limit_period
        held_back = jitter_margin(limits) if margin is None else margin
        if not 0 <= held_back < limits.burst:
            raise ValueError("margin must leave at least one token of the burst")
        self._capacity = limits.burst - held_back
        initial = float(self._capacity - 1) if start == "conservative" else 0.0
        self._bucket = _Bucket(self._capacity, limits.rate.per_second, initial_level=initial)
        self._gate = _Gate()
        self._first_sync_pending = start == "conservative"
        self._limit_cap = limits.rate.per_second  # configured, lowered by X-RateLimit-Limit
        self._ceiling = limits.rate.per_second  # lowered by 429s, raised by probes
        self._last_decrease: float | None = None
        self._ceiling_checked_at: float | None = None  # last 429 or ceiling probe, for probe timing
        self._streak = 0
        self._acquired = 0
        self._observed = 0
        self._throttled = 0
        self._decreases = 0
        self._increases = 0

    # -- acquiring ------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait until a request may start; return its ticket (the loop time it was granted).

        Waits for the shared gate, then for a token. If a pause began while we queued for
        the token, that token is forfeited and we queue again once the gate opens: holding it
        across the pause would let every such waiter start together when the gate opens,
        above burst + rate * T. Pass the ticket to ``observe`` so one burst of 429s counts
        as one AIMD decrease.
        """
        while True:
            await self._gate.wait_open()
            await self._bucket.acquire()
            if self._gate.is_open():
                break
        self._acquired += 1
        return self._now()

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

    def observe(
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
        self._adopt_limit(feedback.limit)
        self._sync_remaining(feedback.remaining)
        if is_throttle:
            self._on_throttle(feedback, ticket)
        elif status < 500:
            self._on_success()

    def _adopt_limit(self, per_period: float | None) -> None:
        if per_period is None or per_period <= 0:
            return
        advertised = per_period / self._header_limit_period
        self._limit_cap = min(self.limits.rate.per_second, advertised)
        if self._bucket.rate > self._ceiling_rate():
            self._bucket.set_rate(self._ceiling_rate())

    def _sync_remaining(self, remaining: int | None) -> None:
        if remaining is None:
            return
        burst = self.limits.burst
        if self._first_sync_pending:
            # Replace the conservative guess once; our requests still in flight may not be in
            # the server's count yet, so they stay spent.
            self._first_sync_pending = False
            in_flight = max(0, self._acquired - self._observed)
            self._bucket.set_level(burst - remaining + in_flight)
            return
        self._bucket.raise_level(burst - remaining)

    def _on_throttle(self, feedback: RateLimitFeedback, ticket: float | None) -> None:
        self._throttled += 1
        self._streak = 0
        self._first_sync_pending = False
        now = self._now()
        self._ceiling_checked_at = now
        self._bucket.raise_level(self._capacity)
        wait = feedback.wait_hint
        if wait is not None and wait > 0:
            self._gate.close_until(self._loop(), now + min(wait, self._max_pause))
        if self._is_new_throttle_event(now, ticket):
            self._decrease(now)

    def _is_new_throttle_event(self, now: float, ticket: float | None) -> bool:
        last = self._last_decrease
        if last is None:
            return True
        if ticket is not None:
            return ticket > last
        return now - last >= self._aimd.decrease_cooldown

    def _decrease(self, now: float) -> None:
        current = self._bucket.rate
        floor = self.limits.rate.per_second * self._aimd.min_rate_fraction
        self._ceiling = max(floor, min(self._ceiling, current * self._aimd.ceiling_margin))
        self._bucket.set_rate(max(floor, current * self._aimd.decrease_factor))
        self._last_decrease = now
        self._decreases += 1

    def _on_success(self) -> None:
        self._streak += 1
        self._maybe_probe_ceiling()
        if self._streak < self._aimd.increase_after:
            return
        self._streak = 0
        ceiling = self._ceiling_rate()
        if self._bucket.rate >= ceiling:
            return
        step = self.limits.rate.per_second * self._aimd.increase_step
        self._bucket.set_rate(min(ceiling, self._bucket.rate + step))
        self._increases += 1

    def _maybe_probe_ceiling(self) -> None:
        configured = self.limits.rate.per_second
        if self._ceiling >= configured or self._ceiling_checked_at is None:
            return
        now = self._now()
        if now - self._ceiling_checked_at < self._aimd.probe_interval:
            return
        self._ceiling_checked_at = now
        step = configured * self._aimd.increase_step
        self._ceiling = min(configured, self._ceiling + step)

    def _ceiling_rate(self) -> float:
        return min(self._limit_cap, self._ceiling)

    # -- introspection --------------------------------------------------------------------

    @property
    def paused_until(self) -> float | None:
        """Loop time at which the shared gate opens, or ``None`` when it is open."""
        return self._gate.until

    def statistics(self) -> LimiterStatistics:
        """An immutable snapshot (see ``LimiterStatistics``); call it on the limiter's loop."""
        return LimiterStatistics(
            configured_rate=self.limits.rate.per_second,
            current_rate=self._bucket.rate,
            ceiling_rate=self._ceiling_rate(),
            burst=self.limits.burst,
            level=self._bucket.current_level(),
            paused_until=self._gate.until,
            throttled=self._throttled,
            decreases=self._decreases,
            increases=self._increases,
            acquired=self._acquired,
            waiting=self._bucket.waiting,
        )

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _now(self) -> float:
        return self._loop().time()


class LimiterSet:
    """One ``ClassLimiter`` per endpoint class for one token, built from ``LimitSettings``."""

    __slots__ = ("_limiters",)

    def __init__(
        self,
        settings: LimitSettings,
        *,
        start: Start = "conservative",
        aimd: AimdSettings | None = None,
        max_pause: float = 300.0,
        header_limit_period: float = 60.0,
    ) -> None:
        self._limiters = {
            endpoint_class: ClassLimiter(
                settings.for_class(endpoint_class),
                start=start,
                aimd=aimd,
                max_pause=max_pause,
                header_limit_period=header_limit_period,
            )
            for endpoint_class in EndpointClass
        }

    def for_class(self, endpoint_class: EndpointClass) -> ClassLimiter:
        """The limiter shared by every request of ``endpoint_class``."""
        return self._limiters[endpoint_class]

    def for_method(self, method: str) -> ClassLimiter:
        """The limiter for an HTTP method (GET/HEAD/OPTIONS read, everything else write)."""
        return self._limiters[EndpointClass.of_method(method)]

    def statistics(self) -> Mapping[EndpointClass, LimiterStatistics]:
        """A read-only snapshot of every class limiter."""
        return MappingProxyType({cls: lim.statistics() for cls, lim in self._limiters.items()})
