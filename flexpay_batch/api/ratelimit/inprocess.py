"""The embedded ``LimiterStore``: one leaky bucket per key, kept in this process.

    store = InProcessStore()
    store.register("write", BucketSpec(capacity=19, rate=100 / 60), AimdState.initial(100 / 60))
    ticket = await store.acquire("write")

The bucket is aiolimiter's leaky-bucket arithmetic (``AsyncLimiter``), kept here as two
numbers (``_Leaky``): a level that leaks at the adaptive rate from the last time it changed.
A request may go when ``level + cost <= capacity`` (aiolimiter's ``has_capacity``); a grant
adds ``cost`` (its ``acquire``). It used to be an ``AsyncLimiter`` with this arithmetic
mirrored beside it (its public API cannot read the level or change the rate); the mirror
alone decides the same, and a grant or a server's fill is then a few float operations on
every request, not four ``AsyncLimiter`` calls and two coroutines (issue 16).

- *Changing the rate or the level.* The level leaked at the old rate until now is carried
  over and leaks at the new rate from now on (``_install``); a server's fill only raises it.
- *Waiting.* Waiters queue on a FIFO lock; only the head waits, on a timer computed from the
  level, then asks again. The timer is at least ``_MIN_WAIT`` ahead: float arithmetic can
  leave a waiter 1e-16 of a token short with a timer at "now", which would spin forever on a
  clock that only moves when the loop idles (looptime), so every retry sees time move.

The burst: a bucket of ``capacity`` leaking at ``rate`` grants ``capacity`` at once from
empty, then one token per ``1 / rate`` seconds; in any window of T seconds at most
``capacity + rate * T``. Time is the running loop's clock, so tests run under ``looptime``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from flexpay_batch.api.ratelimit.aimd import AimdState
from flexpay_batch.api.ratelimit.gate import Gate
from flexpay_batch.api.ratelimit.store import Adaptation, BucketSnapshot, BucketSpec

#: Shortest wait, in seconds, before asking the limiter again (see the module docstring).
_MIN_WAIT = 1e-6


@dataclass(slots=True)
class _Leaky:
    """A level that leaks linearly from ``stamp`` on: aiolimiter's arithmetic."""

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
        # Installed on first use (``live`` set): the initial level must start leaking on the
        # loop's clock then, not at register time, which may come before any loop runs.
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

    def grant(self, cost: float, now: float) -> bool:
        """Take ``cost`` tokens at ``now`` if they are free (aiolimiter's ``has_capacity``
        then ``acquire``); False, nothing taken, if not."""
        level = self.level
        current = level.level - (now - level.stamp) * self.aimd.rate
        if current < 0.0:
            current = 0.0
        if current + cost > self.spec.capacity:
            return False
        # In place (nothing else holds these objects): one grant per request, no allocation.
        level.level, level.stamp = current + cost, now
        natural = self.natural
        natural.level, natural.stamp = natural.at(now, self.spec.rate) + cost, now
        return True


def _now() -> float:
    return asyncio.get_running_loop().time()


class InProcessStore:
    """A ``LimiterStore`` for one process and one event loop.

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

    def acquire_now(self, key: str, cost: float = 1.0) -> float | None:
        """What ``acquire`` grants without waiting (the loop time), or ``None`` when it would
        wait, queue or first start the bucket: then await ``acquire``. No coroutine, so the
        usual request below the limit pays none."""
        bucket = self._buckets[key]
        if bucket.live and not bucket.waiting and bucket.gate.is_open and cost > 0:
            # Nobody queued (so nobody holds the turn), no pause: the same step the queue in
            # ``acquire`` takes when it would not suspend.
            now = _now()
            if bucket.grant(cost, now):
                return now
        return None

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        """Wait for the pause to end and ``cost`` tokens; take them; return the loop time."""
        bucket = self._buckets[key]
        if not bucket.live:
            self._go_live(bucket)
        if not 0 < cost <= bucket.spec.capacity:
            raise ValueError("cost must lie in (0, capacity]")
        granted = self.acquire_now(key, cost)
        if granted is not None:
            return granted
        bucket.waiting += 1
        try:
            async with bucket.turn:
                while True:
                    await bucket.gate.wait_open()
                    now = _now()
                    if bucket.grant(cost, now):
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
        self.fill_now(key, level)

    def fill_now(self, key: str, level: float) -> None:
        """``fill`` without a coroutine: nothing in process waits."""
        bucket = self._buckets[key]
        if not bucket.live:
            self._go_live(bucket)
        now = _now()
        target = min(level, bucket.spec.capacity)
        if target > bucket.level_at(now):
            # In place: one fill per response. The head waiter's timer stays (it can only be
            # early now, and then asks again).
            current = bucket.level
            current.level, current.stamp = target, now

    async def reset_level(self, key: str, level: float) -> None:
        """Replace the level, never below the configured-rate level of the same grants."""
        self.reset_level_now(key, level)

    def reset_level_now(self, key: str, level: float) -> None:
        """``reset_level`` without a coroutine."""
        bucket = self._buckets[key]
        if not bucket.live:
            self._go_live(bucket)
        now = _now()
        self._install(bucket, max(level, bucket.natural_at(now)), now)

    async def pause(self, key: str, seconds: float) -> float:
        """Close the key's gate for ``seconds`` (never shortening); return the seconds left."""
        bucket = self._buckets[key]
        if not bucket.live:
            self._go_live(bucket)
        now = _now()
        bucket.gate.close_until(now + max(0.0, seconds))
        bucket.signal_change()  # the head waiter moves to the gate
        return max(0.0, (bucket.gate.until or now) - now)

    async def adapt(self, key: str, change: Adaptation) -> AimdState:
        """Apply ``change`` to the adaptive state; a new rate applies from now on."""
        return self.adapt_now(key, change)

    def adapt_now(self, key: str, change: Adaptation) -> AimdState:
        """``adapt`` without a coroutine."""
        bucket = self._buckets[key]
        if not bucket.live:
            self._go_live(bucket)
        now = _now()
        before = bucket.aimd
        after = change(before, now)
        if after.rate != before.rate:
            level = bucket.level_at(now)  # leaked at the old rate until now
            bucket.aimd = after
            self._install(bucket, level, now)
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

    def _go_live(self, bucket: _Bucket) -> None:
        """Start the bucket on the loop's clock (every operation checks ``live`` first: one
        attribute read on the hot path instead of a coroutine); or, registered again with
        another spec, go on at its current level under the new spec."""
        bucket.live = True
        now = _now()
        spec = bucket.respec
        if spec is None:
            bucket.natural = _Leaky(0.0, now)
            self._install(bucket, bucket.spec.initial_level, now)
            return
        level, natural = bucket.level_at(now), bucket.natural_at(now)  # at the old rates
        bucket.respec = None
        bucket.spec = spec
        bucket.aimd = bucket.aimd.for_configured(spec.rate)
        bucket.natural = _Leaky(min(natural, spec.capacity), now)
        self._install(bucket, level, now)

    def _install(self, bucket: _Bucket, level: float, now: float) -> None:
        """Set the key's level to ``level`` (within [0, capacity]), leaking at the adaptive
        rate from ``now``; the head waiter re-times its wait."""
        level = min(max(level, 0.0), bucket.spec.capacity)
        bucket.level = _Leaky(level, now)
        bucket.signal_change()
