"""The embedded ``LimiterStore``: one ``aiolimiter.AsyncLimiter`` per key, public API only.

    store = InProcessStore()
    store.register("write", BucketSpec(capacity=19, rate=100 / 60), AimdState.initial(100 / 60))
    ticket = await store.acquire("write")

aiolimiter is the bucket: whether a request may go now is its ``has_capacity``, and a grant
is its ``acquire``. We use only what it documents: the constructor, ``has_capacity(amount)``
and ``acquire(amount)`` (which returns without suspending when ``has_capacity`` is true).
Around it we add what its public API cannot do:

- *Reading the level.* Every change to a limiter goes through this store, so we keep the same
  leaky-bucket arithmetic beside it (``_Leaky``) and always know the level it holds.
- *Changing the rate or lowering the level.* We build a fresh ``AsyncLimiter`` and acquire
  the carried-over level on it (immediate: it starts empty). Raising the level (server says
  tokens are spent) is a plain ``acquire(difference)`` on the current limiter.
- *Waiting.* Waiters queue on a FIFO lock; only the head waits, on a timer computed from the
  level, then asks ``has_capacity`` again. We do not block inside ``AsyncLimiter.acquire``:
  its waiters cannot be moved to a replacement limiter, and its timer is computed from float
  arithmetic that can leave a waiter 1e-16 of a token short with a timer at "now", which
  spins forever on a clock that only moves when the loop idles (looptime). Our timer is at
  least ``_MIN_WAIT`` ahead, so every retry sees time move.

aiolimiter's burst: ``AsyncLimiter(capacity, capacity / rate)`` grants ``capacity`` at once
from empty, then one token per ``1 / rate`` seconds; in any window of T seconds at most
``capacity + rate * T``. Time is the running loop's clock, so tests run under ``looptime``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from flexpay_batch.api.ratelimit.aimd import AimdState
from flexpay_batch.api.ratelimit.gate import Gate
from flexpay_batch.api.ratelimit.store import Adaptation, BucketSnapshot, BucketSpec

#: Shortest wait, in seconds, before asking the limiter again (see the module docstring).
_MIN_WAIT = 1e-6


@dataclass(slots=True)
class _Leaky:
    """A level that leaks linearly from ``stamp`` on: the arithmetic aiolimiter does too."""

    level: float
    stamp: float

    def at(self, now: float, rate: float) -> float:
        return max(0.0, self.level - (now - self.stamp) * rate)


class _Bucket:
    """Everything the store keeps for one key."""

    __slots__ = (
        "aimd",
        "changed",
        "gate",
        "level",
        "limiter",
        "live",
        "natural",
        "respec",
        "spec",
        "turn",
        "waiting",
    )

    def __init__(self, spec: BucketSpec, aimd: AimdState) -> None:
        self.spec = spec
        self.aimd = aimd
        self.gate = Gate()
        # Replaced on first use (``live`` set): the initial level must start leaking on the
        # loop's clock then, not at register time, which may come before any loop runs.
        self.limiter = AsyncLimiter(spec.capacity, spec.capacity / aimd.rate)
        self.live = False
        #: A spec registered while the bucket was in use, taken on at its next operation.
        self.respec: BucketSpec | None = None
        self.level = _Leaky(spec.initial_level, 0.0)
        self.natural = _Leaky(0.0, 0.0)
        # asyncio.Lock wakes its waiters in arrival order: that is the FIFO queue.
        self.turn = asyncio.Lock()
        # Set (and replaced) whenever the head waiter's timer may be wrong: new rate, new
        # level, pause.
        self.changed = asyncio.Event()
        self.waiting = 0

    def level_at(self, now: float) -> float:
        return self.level.at(now, self.aimd.rate)

    def natural_at(self, now: float) -> float:
        return self.natural.at(now, self.spec.rate)

    def signal_change(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def record_grant(self, cost: float, now: float) -> None:
        # In place (nothing else holds these objects): one grant per request, no allocation.
        level, natural = self.level, self.natural
        level.level, level.stamp = level.at(now, self.aimd.rate) + cost, now
        natural.level, natural.stamp = natural.at(now, self.spec.rate) + cost, now


def _now() -> float:
    return asyncio.get_running_loop().time()


class InProcessStore:
    """A ``LimiterStore`` for one process and one event loop, backed by aiolimiter.

    Every operation is atomic because none suspends between reading and writing state (only
    ``acquire`` waits, and it asks the limiter again after every wait). Use from one loop.
    """

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def register(self, key: str, spec: BucketSpec, aimd: AimdState) -> None:
        """Declare ``key``; an already registered key keeps its state (its level, pause and
        what the adaptive state learnt), and takes ``spec``'s rates and capacity when they
        differ: the run now using the token keeps to its own configuration, not to that of
        the run before it (``AimdState.for_configured``). In effect at its next operation,
        which starts the bucket again at its level (``_go_live``)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = _Bucket(spec, aimd)
        elif spec != bucket.spec:
            bucket.respec = spec
            bucket.live = False

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        """Wait for the pause to end and ``cost`` tokens; take them; return the loop time."""
        bucket = self._buckets[key]
        if not bucket.live:
            await self._go_live(bucket)
        if not 0 < cost <= bucket.spec.capacity:
            raise ValueError("cost must lie in (0, capacity]")
        if not bucket.waiting and bucket.gate.is_open and bucket.limiter.has_capacity(cost):
            # Fast path, the usual case below the limit: nobody queued (so nobody holds the
            # turn), no pause, a token free. The same steps as the queue below takes when it
            # would not suspend, without the lock and the gate's event.
            await bucket.limiter.acquire(cost)  # has capacity: never suspends
            now = _now()
            bucket.record_grant(cost, now)
            return now
        bucket.waiting += 1
        try:
            async with bucket.turn:
                while True:
                    await bucket.gate.wait_open()
                    if bucket.limiter.has_capacity(cost):
                        await bucket.limiter.acquire(cost)  # has capacity: never suspends
                        now = _now()
                        bucket.record_grant(cost, now)
                        return now
                    await self._wait_for_tokens(bucket, cost)
        finally:
            bucket.waiting -= 1

    @staticmethod
    async def _wait_for_tokens(bucket: _Bucket, cost: float) -> None:
        """Sleep until ``cost`` tokens should have leaked, or until the bucket changes."""
        changed = bucket.changed
        short = bucket.level_at(_now()) + cost - bucket.spec.capacity
        delay = max(_MIN_WAIT, short / bucket.aimd.rate)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()

    async def fill(self, key: str, level: float) -> None:
        """Raise the level to ``level`` (capped at capacity); never lower it."""
        bucket = self._buckets[key]
        if not bucket.live:
            await self._go_live(bucket)
        now = _now()
        target = min(level, bucket.spec.capacity)
        difference = target - bucket.level_at(now)
        if difference <= 0:
            return
        if bucket.limiter.has_capacity(difference):
            # Jumps the queue without suspending; aiolimiter re-times its waiters itself.
            await bucket.limiter.acquire(difference)
            bucket.level = _Leaky(target, now)
        else:
            # Only float noise between our arithmetic and aiolimiter's can land here.
            await self._install(bucket, target, now)

    async def reset_level(self, key: str, level: float) -> None:
        """Replace the level, never below the configured-rate level of the same grants."""
        bucket = self._buckets[key]
        if not bucket.live:
            await self._go_live(bucket)
        now = _now()
        await self._install(bucket, max(level, bucket.natural_at(now)), now)

    async def pause(self, key: str, seconds: float) -> float:
        """Close the key's gate for ``seconds`` (never shortening); return the seconds left."""
        bucket = self._buckets[key]
        if not bucket.live:
            await self._go_live(bucket)
        now = _now()
        bucket.gate.close_until(now + max(0.0, seconds))
        bucket.signal_change()  # the head waiter moves to the gate
        return max(0.0, (bucket.gate.until or now) - now)

    async def adapt(self, key: str, change: Adaptation) -> AimdState:
        """Apply ``change`` to the adaptive state; a new rate takes a fresh limiter."""
        bucket = self._buckets[key]
        if not bucket.live:
            await self._go_live(bucket)
        now = _now()
        before = bucket.aimd
        after = change(before, now)
        if after.rate != before.rate:
            level = bucket.level_at(now)  # leaked at the old rate until now
            bucket.aimd = after
            await self._install(bucket, level, now)
        else:
            bucket.aimd = after
        return after

    def snapshot(self, key: str) -> BucketSnapshot:
        """The key's state now (exact in process)."""
        bucket = self._buckets[key]
        if not bucket.live and bucket.respec is None:  # never used yet
            level, pause_left = bucket.spec.initial_level, 0.0
        else:
            now = _now()
            level = bucket.level_at(now)
            until = bucket.gate.until
            pause_left = 0.0 if until is None else max(0.0, until - now)
        return BucketSnapshot(
            level=level, pause_left=pause_left, waiting=bucket.waiting, aimd=bucket.aimd
        )

    async def _go_live(self, bucket: _Bucket) -> None:
        """Start the bucket on the loop's clock (every operation checks ``live`` first: one
        attribute read on the hot path instead of a coroutine); or, registered again with
        another spec, go on at its current level under the new spec."""
        bucket.live = True
        now = _now()
        spec = bucket.respec
        if spec is None:
            bucket.natural = _Leaky(0.0, now)
            await self._install(bucket, bucket.spec.initial_level, now)
            return
        level, natural = bucket.level_at(now), bucket.natural_at(now)  # at the old rates
        bucket.respec = None
        bucket.spec = spec
        bucket.aimd = bucket.aimd.for_configured(spec.rate)
        bucket.natural = _Leaky(min(natural, spec.capacity), now)
        await self._install(bucket, level, now)

    async def _install(self, bucket: _Bucket, level: float, now: float) -> None:
        """Replace the key's limiter by one at ``level`` leaking at the adaptive rate."""
        capacity = bucket.spec.capacity
        level = min(max(level, 0.0), capacity)
        fresh = AsyncLimiter(capacity, capacity / bucket.aimd.rate)
        if level > 0:
            await fresh.acquire(level)  # a fresh limiter is empty: returns without suspending
        bucket.limiter = fresh
        bucket.level = _Leaky(level, now)
        bucket.signal_change()
