"""What every simulator record shares: ids, timestamps, money text and cursor pagination.

Ids are opaque strings with a type prefix (``emp_``, ``run_``, ``item_``, ``ps_``). Money is
held as ``Decimal`` and written as a two-place decimal string. Lists are cursor-paginated:
``{"data": [...], "has_more": bool, "next_cursor": str | null}``; a cursor is opaque, and one
made for another list (or the same list with other filters) is 422 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from flexpay_batch.sim.problems import validation

DEFAULT_PAGE = 50
MAX_PAGE = 100

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A fresh random id such as ``run_3f9a…``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def now() -> str:
    """The wall-clock time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: Decimal) -> str:
    """``amount`` as a two-place decimal string."""
    return f"{amount:.2f}"


def encode_cursor(scope: str, index: int) -> str:
    """An opaque cursor for "continue at ``index`` of list ``scope``"."""
    return base64.urlsafe_b64encode(f"{scope}|{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> int:
    """The index in a cursor made for ``scope``; 422 ``cursor`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        got_scope, _, index = raw.rpartition("|")
        if got_scope == scope and index.isdigit():
            return int(index)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise validation("cursor", "cursor is not one this list returned", "invalid_cursor")


def page(
    items: Sequence[T], scope: str, cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` starting at ``cursor``, and the cursor of the next page if any."""
    start = 0 if cursor is None else decode_cursor(cursor, scope)
    chunk = list(items[start : start + limit])
    end = start + len(chunk)
    return chunk, (encode_cursor(scope, end) if end < len(items) else None)


def page_by_seq(
    items: Sequence[T], seq: Callable[[T], int], scope: str, cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` (ascending ``seq``) from ``cursor``, and the next page's cursor.

    The cursor holds a sequence number, not a position, so records that are removed or stop
    matching a filter between two pages do not make the next page skip any others.
    """
    start = 0 if cursor is None else decode_cursor(cursor, scope)
    rest = [item for item in items if seq(item) >= start]
    chunk = rest[:limit]
    if len(rest) <= limit:
        return chunk, None
    return chunk, encode_cursor(scope, seq(chunk[-1]) + 1)
