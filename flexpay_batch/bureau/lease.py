"""A per-token lease in Redis: at most one running job per API token, across every worker.

::

    leases = TokenLeases(redis_client)
    if await leases.acquire(scope, holder, ttl=30.0):     # scope: the token's fingerprint
        ...                                               # refresh every ttl/3 s while running
        await leases.refresh(scope, holder, ttl=30.0)     # False: the lease was lost
        await leases.release(scope, holder)

The key is ``flexpay-batch:lease:<token fingerprint>`` and its value the holder (worker id and
job key): never the token. The lease expires ``ttl`` seconds after its last refresh, so a worker
that dies without releasing it blocks the token for at most ``ttl``. Refresh and release act
only if the caller still holds the lease (a compare-and-set in one Lua script each), so a worker
whose lease expired cannot extend or delete the next holder's.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis

NAMESPACE: Final = "flexpay-batch:lease"

_REFRESH: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenLeases:
    """Leases keyed by a token's fingerprint (``core.keys.token_fingerprint``) in one Redis."""

    __slots__ = ("_client", "_namespace", "_refresh", "_release")

    def __init__(self, client: aioredis.Redis, *, namespace: str = NAMESPACE) -> None:
        self._client = client
        self._namespace = namespace
        self._refresh: Any = client.register_script(_REFRESH)
        self._release: Any = client.register_script(_RELEASE)

    def key(self, scope: str) -> str:
        """The Redis key of ``scope``'s lease."""
        return f"{self._namespace}:{scope}"

    async def acquire(self, scope: str, holder: str, *, ttl: float) -> bool:
        """Take the lease for ``ttl`` seconds if nobody holds it; True if ``holder`` has it."""
        taken = await self._client.set(self.key(scope), holder, nx=True, px=_millis(ttl))
        return bool(taken)

    async def refresh(self, scope: str, holder: str, *, ttl: float) -> bool:
        """Extend ``holder``'s lease to ``ttl`` seconds from now; False if it holds it no more."""
        extended = await self._refresh(keys=[self.key(scope)], args=[holder, _millis(ttl)])
        return bool(extended)

    async def release(self, scope: str, holder: str) -> None:
        """Give the lease back at once (only if ``holder`` still holds it)."""
        await self._release(keys=[self.key(scope)], args=[holder])

    async def holder(self, scope: str) -> str | None:
        """Who holds ``scope``'s lease now, or None."""
        value = await self._client.get(self.key(scope))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


__all__ = ["NAMESPACE", "TokenLeases"]
