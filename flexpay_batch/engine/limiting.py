"""Which limiter store a run uses: the in-process one, or Redis when ``limiter_url`` is set.

    async with limiter_store(settings) as store:          # None without limiter_url
        limiters = shared_limiters(settings.limits, token, store)

With a store, every process naming the same Redis shares each token's buckets: the keys are
the token's fingerprint and the endpoint class, never the token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flexpay_batch.api.ratelimit.limiter import LimiterSet, Start
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.core.keys import token_fingerprint
from flexpay_batch.core.limitspec import LimitSettings
from flexpay_batch.core.settings import Settings


@asynccontextmanager
async def limiter_store(settings: Settings) -> AsyncIterator[RedisStore | None]:
    """The shared store ``settings.limiter_url`` names (closed on exit), or ``None``.

    Raises ``LimiterStoreUnreachable`` (exit 2) when Redis does not answer now.
    """
    async with limiter_store_at(settings.limiter_url) as store:
        yield store


@asynccontextmanager
async def limiter_store_at(url: str | None) -> AsyncIterator[RedisStore | None]:
    """The shared store at ``url`` (closed on exit), or ``None`` without a URL: for a host of
    many runs (a bureau worker) that shares one store between them."""
    if url is None:
        yield None
        return
    store = await RedisStore.connect(url)
    try:
        yield store
    finally:
        await store.aclose()


def shared_limiters(
    limits: LimitSettings,
    token: str,
    store: RedisStore | None,
    *,
    start: Start = "conservative",
    max_pause: float = 300.0,
) -> LimiterSet:
    """The run's limiters: in process without ``store``, else keyed by the token's fingerprint.

    ``max_pause`` caps a server-imposed pause, in seconds."""
    if store is None:
        return LimiterSet(limits, start=start, max_pause=max_pause)
    return LimiterSet(
        limits, start=start, max_pause=max_pause, store=store, scope=token_fingerprint(token)
    )
