"""Token buckets per (token, endpoint class), with an injectable monotonic clock.

    bucket = TokenBucket(ClassLimits(Rate(100, 60), burst=20), clock=time.monotonic)
    admission = bucket.try_acquire()
    if not admission.allowed: answer 429 with Retry-After = admission.retry_after

Semantics (the same as ``flexpay_batch.core.limitspec``): the bucket holds at most ``burst`` tokens,
starts full, and refills continuously at ``rate.per_second`` tokens per second; a request is
admitted when a whole token is available and then takes it. Refused requests take nothing
(like nginx ``limit_req``). Hence in any interval of T seconds at most ``burst + rate * T``
requests are admitted, and a client that, after spending its burst, spaces requests at least
``1 / rate`` seconds apart is never refused. Time comes only from ``clock`` (seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings

# Float refills accumulate rounding error; a client spacing requests exactly 1/rate apart must
# still find a whole token, so "almost one" counts as one. 1e-9 of a token is far below any
# rate this simulator is configured with.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Admission:
    """The bucket's answer: admitted?, whole tokens left, seconds to full, seconds to a token."""

    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


class TokenBucket:
    """A token bucket of capacity ``limits.burst`` refilled at ``limits.rate`` (see module)."""

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "rate")

    def __init__(self, limits: ClassLimits, clock: Callable[[], float]) -> None:
        self.capacity = float(limits.burst)
        self.rate = limits.rate.per_second
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._stamp = now
        return self._tokens

    def try_acquire(self) -> Admission:
        """Take one token if a whole one is there; say what is left either way."""
        tokens = self._refill()
        if tokens + _EPSILON >= 1.0:
            self._tokens = tokens = max(0.0, tokens - 1.0)
            return self._admission(True, tokens)
        return self._admission(False, tokens)

    def peek(self) -> Admission:
        """What the bucket holds now, taking nothing (``allowed`` says whether it would admit)."""
        tokens = self._refill()
        return self._admission(tokens + _EPSILON >= 1.0, tokens)

    def _admission(self, allowed: bool, tokens: float) -> Admission:
        return Admission(
            allowed=allowed,
            remaining=int(tokens + _EPSILON),
            reset_after=(self.capacity - tokens) / self.rate,
            retry_after=0.0 if allowed else (1.0 - tokens) / self.rate,
        )


class _Pair:
    """The enforced bucket plus, when enforcement differs, the advertised shadow bucket."""

    __slots__ = ("advertised", "enforced")

    def __init__(self, enforced: TokenBucket, advertised: TokenBucket | None) -> None:
        self.enforced = enforced
        self.advertised = advertised


class BucketSet:
    """All buckets of one simulator, created on first use per (token, class).

    When ``enforced`` limits are given the decision comes from them while the reported
    ``remaining``/``reset_after`` come from a shadow bucket run on the advertised limits: the
    simulator then behaves like a server whose headers promise more than it grants.
    """

    __slots__ = ("_advertised", "_buckets", "_clock", "_enforced")

    def __init__(
        self,
        advertised: LimitSettings,
        enforced: LimitSettings | None,
        clock: Callable[[], float],
    ) -> None:
        self._advertised = advertised
        self._enforced = enforced
        self._clock = clock
        self._buckets: dict[tuple[str, EndpointClass], _Pair] = {}

    def admit(self, token: str, endpoint_class: EndpointClass) -> Admission:
        """Decide one request of ``token`` in ``endpoint_class``."""
        pair = self._buckets.get((token, endpoint_class))
        if pair is None:
            pair = self._buckets[(token, endpoint_class)] = self._new_pair(endpoint_class)
        decision = pair.enforced.try_acquire()
        if pair.advertised is None:
            return decision
        if decision.allowed:
            shown = pair.advertised.try_acquire()
            return Admission(True, shown.remaining, shown.reset_after, 0.0)
        shown = pair.advertised.peek()
        return Admission(False, shown.remaining, shown.reset_after, decision.retry_after)

    def _new_pair(self, endpoint_class: EndpointClass) -> _Pair:
        advertised = self._advertised.for_class(endpoint_class)
        if self._enforced is None:
            return _Pair(TokenBucket(advertised, self._clock), None)
        enforced = self._enforced.for_class(endpoint_class)
        return _Pair(TokenBucket(enforced, self._clock), TokenBucket(advertised, self._clock))


def format_seconds(seconds: float, *, fractional: bool) -> str:
    """Seconds for a header: whole seconds rounded up (RFC 9110), or milliseconds if asked."""
    if fractional:
        return f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".") or "0"
    return str(max(0, math.ceil(seconds - 1e-9)))


def format_per_minute(limits: ClassLimits) -> str:
    """``X-RateLimit-Limit``: the sustained rate per minute, an integer when it is one."""
    per_minute = limits.rate.per_minute
    rounded = round(per_minute)
    return str(rounded) if abs(per_minute - rounded) < 1e-9 else f"{per_minute:.3f}"
