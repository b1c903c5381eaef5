"""Where bucket state lives: the ``LimiterStore`` seam and its value types.

    store = InProcessStore()                       # or, later, a Redis store
    store.register("tok:write", BucketSpec(capacity=19, rate=100 / 60), AimdState.initial(100 / 60))
    ticket = await store.acquire("tok:write")       # waits for a token
    await store.fill("tok:write", 19.0)             # the server says its bucket is empty
    await store.pause("tok:write", 5.0)             # Retry-After: 5, for every waiter of the key
    await store.adapt("tok:write", policy.on_success)

``ClassLimiter`` decides *what* to do with server feedback; a store decides *where* the
bucket, the pause and the adaptive rate are kept and makes each operation atomic. One store
serves many keys (one per token fingerprint and endpoint class). A store must keep:

- a leaky bucket per key: ``level`` tokens in use, at most ``capacity``, leaking at the
  adaptive state's ``rate`` per second; a grant adds its cost to the level;
- the level a bucket leaking at the *configured* rate would hold after the same grants (the
  floor of ``reset_level``: it is what keeps "burst + rate x T" whatever feedback says);
- one pause deadline per key, only ever extended, during which nothing is granted;
- one ``AimdState`` per key, changed only through ``adapt``.

All times are the store's clock in seconds (the event loop's clock in process; Redis
``TIME`` for a shared store); callers only compare store times with store times and
otherwise deal in durations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flexpay_batch.api.ratelimit.aimd import AimdState

#: A pure transition of the adaptive state: ``(state, now) -> new state`` (see ``aimd``).
Adaptation = Callable[[AimdState, float], AimdState]


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """The fixed shape of one key's bucket.

    ``capacity`` is the most tokens granted at once (the burst our side uses), ``rate`` the
    configured sustained rate in tokens per second, ``initial_level`` the level before the
    first grant (``capacity - 1`` for a conservative start, ``0`` for a full bucket).
    """

    capacity: float
    rate: float
    initial_level: float = 0.0

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.rate <= 0:
            raise ValueError("a bucket needs capacity >= 1 and a positive rate")
        if not 0 <= self.initial_level <= self.capacity:
            raise ValueError("initial_level must lie in [0, capacity]")


@dataclass(frozen=True, slots=True)
class BucketSnapshot:
    """What a store last knew about one key, for statistics; read without I/O.

    ``level`` in tokens, ``pause_left`` in seconds (``0.0`` when not paused), ``waiting``
    the acquisitions of this process waiting on the key, ``aimd`` the adaptive state.
    """

    level: float
    pause_left: float
    waiting: int
    aimd: AimdState


class LimiterStore(Protocol):
    """Bucket state for many keys; every async operation is atomic per key.

    ``ClassLimiter`` only calls these, so a new store (Redis: GCRA in one Lua script, Redis
    ``TIME`` as the clock, a hash per key) is written against this and nothing else.
    """

    def register(self, key: str, spec: BucketSpec, aimd: AimdState) -> None:
        """Declare ``key`` (no I/O). A shared store keeps existing state for a known key."""
        ...

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        """Wait until ``key`` is not paused and ``cost`` tokens are free, take them, and return
        the grant time (the ticket). Nothing is granted while paused; FIFO within a process.
        Cancelling the caller takes no token."""
        ...

    async def fill(self, key: str, level: float) -> None:
        """Make the level at least ``level`` (capped at capacity) without waiting: the server
        says those tokens are spent. Never lowers the level."""
        ...

    async def reset_level(self, key: str, level: float) -> None:
        """Replace the level (capped at capacity), but never below the level the bucket would
        hold had it always leaked at the configured rate. Used once, at the first sync."""
        ...

    async def pause(self, key: str, seconds: float) -> float:
        """Grant nothing on ``key`` for ``seconds`` from now (a pause is never shortened);
        return the seconds left of the pause now in force."""
        ...

    async def adapt(self, key: str, change: Adaptation) -> AimdState:
        """Apply ``change(state, now)`` atomically and return the new state; from now on the
        bucket leaks at the new ``rate`` (what leaked so far stays leaked). A shared store
        may call ``change`` more than once (optimistic retry); it must be pure."""
        ...

    def snapshot(self, key: str) -> BucketSnapshot:
        """The last known state of ``key`` (no I/O; a shared store may lag by one call)."""
        ...
