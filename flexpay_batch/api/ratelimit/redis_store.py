"""A ``LimiterStore`` in Redis: every process and host naming the same Redis shares each bucket.

    store = await RedisStore.connect("redis://127.0.0.1:6379/0")   # exit 2 if unreachable
    limiters = LimiterSet(settings.limits, store=store, scope=token_fingerprint(token))
    ...
    await store.aclose()

One hash per key (``{namespace}:{scope}:{class}``, the scope being the token's fingerprint,
never the token), changed only by one Lua script (``redis_lua.py``): GCRA arithmetic, the
pause, the adaptive state and its version, all atomic, all on Redis ``TIME`` so hosts whose
clocks disagree still agree on the bucket. Tickets and AIMD times are Redis times.

**Failing closed.** ``connect`` raises ``LimiterStoreUnreachable`` (exit 2, one sentence with
HOST:PORT, never the URL's password) when Redis does not answer, refuses the credentials
(NOAUTH, WRONGPASS), lacks a permission the script needs (NOPERM: an ACL user without
EVALSHA or the namespace's keys), or refuses writes (READONLY replica, OOM under
``maxmemory`` with ``noeviction``): the script runs once on a probe key, so a store that
would only make every row wait stops the command before anything is written. Mid-run:

- refused credentials or permissions (a password set or changed, an ACL revoked) stop the
  run with ``LimiterStoreUnreachable``: waiting cannot fix them and nobody would be told why;
- READONLY and OOM are waited out like a lost connection (below), the message naming the
  cause (``ReadOnlyError``, ``OutOfMemoryError``): a failover promotes a new primary or the
  operator frees memory, and the run carries on by itself; nothing is granted meanwhile;
- NOSCRIPT (the script cache flushed: ``SCRIPT FLUSH``, a restart) loads the script again
  and carries on; nothing to wait for and nothing to tell.

Lost mid-run, every operation waits: it logs "waiting for the rate-limit store
at HOST:PORT" once, retries with capped exponential backoff, and carries on when Redis is
back — nothing is granted meanwhile, so nothing is sent. A key missing from a Redis that
this process has seen it in (a restart, or an expiry after an hour of idleness) is recreated
*full* (nothing to spend until a token leaks at the configured rate) with the last adaptive
state this process knew, never as a fresh empty bucket.

**Adaptation** is optimistic: ``change`` runs here on the last known state and the script
installs the result only if the state's version has not moved; otherwise it replies with the
current state and ``change`` runs again. One round trip when nobody else adapted meanwhile;
none for a change of the success streak alone, which each process keeps for itself.

**Batched grants.** One round trip serves every waiter this process has queued on a key at
that moment: the script grants as many as the bucket holds, all at one Redis time, and hands
the count back; the waiters take theirs in FIFO order without another round trip. So a
process's throughput is not one grant per round trip (which on a loaded machine, at 10-30 ms,
is below the limit) and the grants are exactly those one-at-a-time requests at that instant
would have got.

**Cancellation.** A waiter cancelled while it sleeps takes no token; one cancelled during
the script's round trip may have been granted one that is then unused (stricter, never
looser). Tokens of a batch whose waiters have all gone are dropped, never kept for later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Self
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flexpay_batch.api.ratelimit.aimd import AimdState
from flexpay_batch.api.ratelimit.redis_lua import SCRIPT
from flexpay_batch.api.ratelimit.store import Adaptation, BucketSnapshot, BucketSpec
from flexpay_batch.core.errors import LimiterStoreUnreachable

log = logging.getLogger(__name__)

#: Hash keys expire after this many milliseconds without a change (the bucket long drained).
_TTL_MS: Final = 3_600_000
#: Shortest wait, in seconds, before asking the script again.
_MIN_WAIT: Final = 1e-6
#: Reconnection backoff: first and longest wait, in seconds.
_BACKOFF_FIRST: Final = 0.05
_BACKOFF_MAX: Final = 2.0
#: Credentials refused: waiting would not help (``AuthenticationError`` is a
#: ``ConnectionError`` in redis-py, so it is tested before ``_UNAVAILABLE``).
_REFUSED = (AuthenticationError, NoPermissionError)
#: Errors that mean "the store cannot grant right now" (see the module docstring): wait.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    OSError,
)
#: Why a store cannot be used, by error, for the one sentence at start (default: its name).
_WHY = {
    AuthenticationError: "it refuses the credentials",
    NoPermissionError: "its user lacks a permission it needs (NOPERM)",
    ReadOnlyError: "it is a read-only replica",
    OutOfMemoryError: "it is out of memory: maxmemory reached",
}


def store_address(url: str) -> str:
    """``HOST:PORT`` of a ``redis://`` or ``rediss://`` URL: what messages show (no secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class _Reply:
    """One parsed script reply (see ``redis_lua``)."""

    granted: bool
    now: float
    level: float
    pause_left: float
    version: int
    aimd: AimdState
    extra: float


def _opt(text: str) -> float | None:
    return None if text == "" else float(text)


def _aimd_args(state: AimdState) -> list[str]:
    def opt(value: float | None) -> str:
        return "" if value is None else repr(value)

    return [
        repr(state.rate),
        repr(state.ceiling),
        repr(state.limit_cap),
        opt(state.last_decrease),
        opt(state.ceiling_checked_at),
        str(state.streak),
        str(state.decreases),
        str(state.increases),
    ]


def _parse(raw: Any, configured: float) -> _Reply:
    f = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(",")
    aimd = AimdState(
        configured=configured,
        rate=float(f[5]),
        ceiling=float(f[6]),
        limit_cap=float(f[7]),
        last_decrease=_opt(f[8]),
        ceiling_checked_at=_opt(f[9]),
        streak=int(f[10]),
        decreases=int(f[11]),
        increases=int(f[12]),
    )
    return _Reply(
        granted=f[0] == "1",
        now=float(f[1]),
        level=float(f[2]),
        pause_left=float(f[3]),
        version=int(f[4]),
        aimd=aimd,
        extra=float(f[13]),
    )


def _refused(exc: RedisError) -> bool:
    """Credentials refused or lacking: waiting would not help, the run stops.

    Besides NOAUTH/WRONGPASS/NOPERM, a connection opened after a password was set may be
    refused any command of more than ten arguments (the script's are more) with "Protocol
    error: unauthenticated multibulk length" before it is told NOAUTH.
    """
    if isinstance(exc, _REFUSED):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith("Protocol error: unauthenticated")


def _cannot_be_used(address: str, exc: RedisError) -> str:
    """One sentence naming HOST:PORT and why; never Redis's own text (it may echo input)."""
    why = next((text for kind, text in _WHY.items() if isinstance(exc, kind)), None)
    if why is None and _refused(exc):
        why = _WHY[AuthenticationError]
    return f"the rate-limit store at {address} cannot be used ({why or type(exc).__name__})"


def _log(text: str, level: int) -> None:
    log.log(level, "%s", text)


class _Key:
    """What this process knows about one key."""

    __slots__ = (
        "changed",
        "known",
        "last",
        "local_at",
        "prepaid",
        "prepaid_ticket",
        "spec",
        "streak",
        "turn",
        "waiting",
    )

    def __init__(self, spec: BucketSpec, aimd: AimdState) -> None:
        self.spec = spec
        # Tokens granted in one batch for this process's queued waiters, not yet handed out,
        # and the Redis time they were granted at (see ``RedisStore.acquire``).
        self.prepaid = 0.0
        self.prepaid_ticket = 0.0
        self.last = _Reply(False, 0.0, spec.initial_level, 0.0, -1, aimd, 0.0)
        self.local_at: float | None = None  # loop time of ``last``
        self.known = False  # seen in Redis: if it vanishes, Redis lost it
        self.turn = asyncio.Lock()  # FIFO among this process's waiters
        self.changed = asyncio.Event()
        self.waiting = 0
        self.streak = 0  # successes in a row seen by this process (see ``adapt``)

    def signal_change(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class RedisStore:
    """A ``LimiterStore`` shared through one Redis (see the module docstring).

    ``clock`` replaces Redis ``TIME`` by a local clock (seconds): for tests that run on a
    fake event loop clock only, since a local clock is exactly what hosts do not share.
    """

    __slots__ = (
        "_address",
        "_client",
        "_clock",
        "_keys",
        "_namespace",
        "_notify",
        "_script",
        "_unavailable",
    )

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        address: str,
        namespace: str = "flexpay-batch:limiter",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._address = address
        self._namespace = namespace
        self._clock = clock
        self._script = client.register_script(SCRIPT)
        self._keys: dict[str, _Key] = {}
        self._unavailable = False
        self._notify: Callable[[str, int], None] = _log

    def set_notifier(self, notify: Callable[[str, int], None]) -> None:
        """Send "waiting for the store" / "the store is back" to ``notify(text, level)``
        (e.g. the run's progress reporter) instead of this module's logger."""
        self._notify = notify

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        namespace: str = "flexpay-batch:limiter",
        clock: Callable[[], float] | None = None,
        socket_timeout: float = 5.0,
    ) -> Self:
        """Open ``url`` and check that Redis answers; else ``LimiterStoreUnreachable``."""
        address = store_address(url)
        try:
            client = aioredis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError:
            raise LimiterStoreUnreachable(
                f"the rate-limit store URL for {address} is not a redis:// or rediss:// URL"
            ) from None
        store = cls(client, address=address, namespace=namespace, clock=clock)
        try:
            await client.ping()
            await store._probe()
        except RedisError as exc:
            await client.aclose()
            raise LimiterStoreUnreachable(_cannot_be_used(address, exc)) from None
        return store

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the Redis (never the URL: it may hold credentials)."""
        return self._address

    @property
    def unavailable(self) -> bool:
        """True while operations wait for Redis to come back."""
        return self._unavailable

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    # -- the seam ---------------------------------------------------------------------------

    def register(self, key: str, spec: BucketSpec, aimd: AimdState) -> None:
        """Declare ``key`` (no I/O); Redis keeps any state other processes gave it.

        Registered again with another spec (the next run of the same token, configured
        differently), the key takes it: the script works at each caller's rates and reads
        the shared adaptive state against them (``redis_lua``), and so does this process's
        copy of the last reply. Tokens granted under the old spec and not handed out are
        dropped (stricter, never looser)."""
        entry = self._keys.get(key)
        if entry is None:
            self._keys[key] = _Key(spec, aimd)
        elif spec != entry.spec:
            entry.spec = spec
            entry.prepaid = 0.0
            entry.last = replace(entry.last, aimd=entry.last.aimd.for_configured(spec.rate))

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        """Wait for the pause and ``cost`` tokens; take them; return the Redis time.

        One round trip serves every waiter of this process queued at that moment: the script
        grants up to one ``cost`` each, as many as the bucket holds, all at the same Redis
        time, and the waiters behind take theirs in turn without asking again. Serving one
        waiter per round trip would cap a process at one grant per round trip, which on a
        loaded machine (10-30 ms) is below the limit whenever it sends alone.
        """
        entry = self._keys[key]
        if not 0 < cost <= entry.spec.capacity:
            raise ValueError("cost must lie in (0, capacity]")
        entry.waiting += 1
        try:
            async with entry.turn:
                if entry.prepaid >= cost - 1e-9:
                    entry.prepaid -= cost
                    return entry.prepaid_ticket
                entry.prepaid = 0.0
                await asyncio.sleep(0)  # let waiters started with this one join the batch
                while True:
                    changed = entry.changed
                    wanted = min(entry.waiting, int(entry.spec.capacity // cost))
                    reply = await self._run(key, "acquire", repr(cost), str(max(1, wanted)))
                    if reply.granted:
                        entry.prepaid = (reply.extra - 1) * cost
                        entry.prepaid_ticket = reply.now
                        return reply.now
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(_MIN_WAIT, reply.extra)):
                            await changed.wait()
        finally:
            entry.waiting -= 1
            if entry.waiting == 0:
                # Granted for waiters that were cancelled since: unused, never kept for later
                # (a token kept would let a later burst exceed the bucket).
                entry.prepaid = 0.0

    async def fill(self, key: str, level: float) -> None:
        """Raise the shared level to ``level`` (capped); never lower it."""
        await self._run(key, "fill", repr(level))

    async def reset_level(self, key: str, level: float) -> None:
        """Replace the level, floored by the configured-rate level of the same grants."""
        await self._run(key, "reset", repr(level))
        self._keys[key].signal_change()

    async def pause(self, key: str, seconds: float) -> float:
        """Extend the shared pause to ``seconds`` from now; return the seconds left."""
        self._keys[key].prepaid = 0.0  # granted before the pause, not yet handed out: dropped
        reply = await self._run(key, "pause", repr(max(0.0, seconds)))
        return reply.pause_left

    async def adapt(self, key: str, change: Adaptation) -> AimdState:
        """Apply ``change`` optimistically (see the module docstring); return the new state.

        The success streak stays in this process: a change that only moves ``streak`` costs
        no round trip (it would be one per response), so each process counts its own run of
        successes towards an increase, and the increase itself is shared.
        """
        entry = self._keys[key]
        if entry.last.version < 0:
            await self._run(key, "get")
        while True:
            before = entry.last
            local = replace(before.aimd, streak=entry.streak)
            after = change(local, self._now_estimate(entry))
            if replace(after, streak=0) == replace(local, streak=0):
                entry.streak = after.streak
                return after
            reply = await self._run(key, "cas", str(before.version), *_aimd_args(after))
            if reply.granted:
                entry.streak = after.streak
                if after.rate != before.aimd.rate:
                    entry.signal_change()
                return after

    def snapshot(self, key: str) -> BucketSnapshot:
        """The state of ``key`` at the last reply, aged by the local clock since (no I/O)."""
        entry = self._keys[key]
        last = entry.last
        aged = 0.0
        if entry.local_at is not None:
            aged = max(0.0, asyncio.get_running_loop().time() - entry.local_at)
        return BucketSnapshot(
            level=max(0.0, last.level - aged * last.aimd.rate),
            pause_left=max(0.0, last.pause_left - aged),
            waiting=entry.waiting,
            aimd=last.aimd,
        )

    # -- talking to Redis -------------------------------------------------------------------

    def _now_estimate(self, entry: _Key) -> float:
        """Redis time now, from the last reply and the local clock since (no I/O)."""
        if self._clock is not None:
            return self._clock()
        if entry.local_at is None:
            return entry.last.now
        return entry.last.now + (asyncio.get_running_loop().time() - entry.local_at)

    async def _run(self, key: str, op: str, *args: str) -> _Reply:
        """Run the script for ``key``; while Redis is unreachable, wait and retry."""
        entry = self._keys[key]
        spec = entry.spec
        # A key this process has seen but Redis has not: recreate it full (see the docstring).
        initial = spec.capacity if entry.known else spec.initial_level
        argv = self._argv(op, spec, initial, entry.last.aimd, *args)
        delay = _BACKOFF_FIRST
        while True:
            try:
                raw = await self._eval(f"{self._namespace}:{key}", argv)
                break
            except RedisError as exc:
                if _refused(exc):
                    raise LimiterStoreUnreachable(_cannot_be_used(self._address, exc)) from None
                if isinstance(exc, NoScriptError):
                    # Flushed again between redis-py's reload of the script and its EVALSHA.
                    await asyncio.sleep(delay)
                    delay = min(_BACKOFF_MAX, delay * 2)
                    continue
                if not isinstance(exc, _UNAVAILABLE):
                    raise
                self._went_away(exc)
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
            except OSError as exc:
                self._went_away(exc)
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
        if self._unavailable:
            self._unavailable = False
            self._notify(f"the rate-limit store at {self._address} is back", logging.WARNING)
        reply = _parse(raw, spec.rate)
        entry.last = reply
        entry.local_at = asyncio.get_running_loop().time()
        entry.known = True
        return reply

    def _argv(
        self, op: str, spec: BucketSpec, initial: float, aimd: AimdState, *args: str
    ) -> list[str]:
        """The script's ARGV (see ``redis_lua``)."""
        return [
            op,
            "" if self._clock is None else repr(self._clock()),
            repr(spec.capacity),
            repr(spec.rate),
            repr(initial),
            *_aimd_args(aimd),
            str(_TTL_MS),
            *args,
        ]

    async def _probe(self) -> None:
        """Run the script once on a probe key and delete it: what a run needs, checked now.

        PING passes on a replica, under OOM and for an ACL user without EVALSHA or without
        the namespace's keys; this does not. The key goes at once (its expiry only covers a
        process killed in between)."""
        probe = f"{self._namespace}:probe"
        await self._eval(probe, self._argv("get", BucketSpec(1, 1), 0.0, AimdState.initial(1)))
        await self._client.delete(probe)

    async def _eval(self, redis_key: str, argv: list[str]) -> Any:
        """One run of the script (EVALSHA, loading it again after a Redis restart); its reply
        as Redis sent it (see ``redis_lua``)."""
        return await self._script(keys=[redis_key], args=argv)

    def _went_away(self, exc: BaseException) -> None:
        if not self._unavailable:
            self._unavailable = True
            self._notify(
                f"waiting for the rate-limit store at {self._address} ({type(exc).__name__}); "
                "nothing is sent until it answers",
                logging.WARNING,
            )
