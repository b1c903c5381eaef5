"""Paginated reads shared by the jobs: every page goes through the read limiter and the run's
retry policy and budget (``ApiSession``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flexpay_batch.core import errors

# Types only: validate and status load the jobs without aiohttp (start-up cost).
if TYPE_CHECKING:
    from flexpay_batch.api.session import ApiSession

#: Page size asked for on list endpoints; the server may return fewer.
PAGE_SIZE = 100
#: A guard against a server whose cursor never ends.
MAX_PAGES = 100_000


async def read_page(api: ApiSession, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
    """One GET, retried under the run's policy (reads are safe to repeat)."""
    reply = await api.request("GET", path, params=params)
    return reply.body


async def list_all(
    api: ApiSession, path: str, *, params: Mapping[str, str | int] | None = None
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list (``data`` and ``next_cursor``), in order."""
    items: list[dict[str, Any]] = []
    query: dict[str, str | int] = {"limit": PAGE_SIZE, **(params or {})}
    for _ in range(MAX_PAGES):
        body = await read_page(api, path, query)
        data = body.get("data")
        if isinstance(data, list):
            items.extend(item for item in data if isinstance(item, dict))
        cursor = body.get("next_cursor")
        if not isinstance(cursor, str) or not cursor:
            return items
        query["cursor"] = cursor
    raise errors.UnexpectedResponse(f"{path}: more than {MAX_PAGES} pages; the cursor never ends")


async def read_ids(api: ApiSession, path: str) -> frozenset[str]:
    """The ``id`` of every item of a small reference list (pay groups, employment types)."""
    items = await list_all(api, path)
    return frozenset(str(item["id"]) for item in items if "id" in item)
