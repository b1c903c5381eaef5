"""Export a submitted run's paystubs (paginated reads) to CSV or JSONL, owner-only.

Paystubs hold pay figures of named people, so the file is created 0600 and CSV cells are
escaped against formula injection. Pages are written as they arrive: memory stays flat
whatever the run's size.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.files import escape_formula, open_private
from flexpay_batch.core.settings import Settings
from flexpay_batch.jobs.lookups import PAGE_SIZE, list_all, read_page

_MAX_PAGES = 100_000

#: CSV column order: who, when, how much, then the server's ids; unknown keys follow, sorted.
COLUMNS = (
    "employee_external_id",
    "employee_id",
    "pay_date",
    "period_start",
    "period_end",
    "gross_amount",
    "net_amount",
    "currency",
    "paystub_id",
    "item_id",
    "payroll_run_id",
)


async def export_paystubs(settings: Settings, token: str, run_id: str, out: Path) -> int:
    """Write every paystub of ``run_id`` to ``out`` (.csv or .jsonl); return how many."""
    suffix = out.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise errors.UsageError(f"--out must end in .csv or .jsonl, not {out.name!r}")
    async with FlexPayClient(
        settings.base_url,
        token,
        ca_bundle=settings.ca_bundle,
        limits=settings.limits,
        timeouts=settings.timeouts,
    ) as client:
        api = ApiSession(client, settings.retry, RetryBudget())
        external_ids = await _external_ids(api)
        with open_private(out, "w") as handle:
            writer = _CsvSink(handle) if suffix == ".csv" else _JsonlSink(handle)
            return await _copy_pages(api, run_id, writer, external_ids)


async def _external_ids(api: ApiSession) -> dict[str, str]:
    """Employee id → the customer's external id (one paginated pass; {} without the scope).

    A paystub names the employee by FlexPay's id only; the operator knows people by theirs.
    """
    try:
        employees = await list_all(api, "employees")
    except errors.PermissionDenied:
        return {}
    return {
        str(e["employee_id"]): str(e["external_id"])
        for e in employees
        if e.get("employee_id") and e.get("external_id")
    }


async def _copy_pages(
    api: ApiSession, run_id: str, sink: _Sink, external_ids: dict[str, str]
) -> int:
    count = 0
    query: dict[str, str | int] = {"payroll_run_id": run_id, "limit": PAGE_SIZE}
    for _ in range(_MAX_PAGES):
        body = await read_page(api, "paystubs", query)
        data = body.get("data")
        for stub in data if isinstance(data, list) else []:
            if isinstance(stub, dict):
                employee = str(stub.get("employee_id") or "")
                sink.write({"employee_external_id": external_ids.get(employee), **stub})
                count += 1
        cursor = body.get("next_cursor")
        if not isinstance(cursor, str) or not cursor:
            return count
        query["cursor"] = cursor
    raise errors.UnexpectedResponse(f"paystubs: more than {_MAX_PAGES} pages")


class _Sink:
    def write(self, stub: dict[str, Any]) -> None:
        raise NotImplementedError


class _JsonlSink(_Sink):
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, stub: dict[str, Any]) -> None:
        self._handle.write(json.dumps(stub, sort_keys=True, ensure_ascii=False) + "\n")


class _CsvSink(_Sink):
    """CSV with ``COLUMNS`` first, then the first stub's other keys (sorted); nested values
    as compact JSON."""

    def __init__(self, handle: Any) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._columns: list[str] | None = None

    def write(self, stub: dict[str, Any]) -> None:
        if self._columns is None:
            self._columns = [*COLUMNS, *sorted(set(stub) - set(COLUMNS))]
            self._writer.writerow(self._columns)
        self._writer.writerow([_cell(stub.get(column)) for column in self._columns])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return escape_formula(json.dumps(value, sort_keys=True, separators=(",", ":")))
    return escape_formula(str(value))
