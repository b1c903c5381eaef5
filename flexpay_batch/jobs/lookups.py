"""Paginated reads shared by the jobs: every page goes through the read limiter and retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.retry.loop import execute
from flexpay_batch.api.retry.policy import RetryBudget, RetryPolicy
from flexpay_batch.core import errors

#: Page size asked for on list endpoints; the server may return fewer.
PAGE_SIZE = 100
#: A guard against a server whose cursor never ends.
MAX_PAGES = 100_000


async def read_page(
    client: FlexPayClient,
    path: str,
    params: Mapping[str, str | int],
    *,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
) -> dict[str, Any]:
    """One GET with the run's retry policy (reads are safe to repeat)."""
    reply = await execute(
        lambda: client.request("GET", path, params=params),
        policy=policy or RetryPolicy(),
        budget=budget or RetryBudget(),
    )
    return reply.body


async def list_all(
    client: FlexPayClient,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list (``data`` and ``next_cursor``), in order."""
    items: list[dict[str, Any]] = []
    query: dict[str, str | int] = {"limit": PAGE_SIZE, **(params or {})}
    for _ in range(MAX_PAGES):
        body = await read_page(client, path, query, policy=policy, budget=budget)
        data = body.get("data")
        if isinstance(data, list):
            items.extend(item for item in data if isinstance(item, dict))
        cursor = body.get("next_cursor")
        if not isinstance(cursor, str) or not cursor:
            return items
        query["cursor"] = cursor
    raise errors.UnexpectedResponse(f"{path}: more than {MAX_PAGES} pages; the cursor never ends")


async def read_ids(client: FlexPayClient, path: str) -> frozenset[str]:
    """The ``id`` of every item of a small reference list (pay groups, employment types)."""
    items = await list_all(client, path)
    return frozenset(str(item["id"]) for item in items if "id" in item)
