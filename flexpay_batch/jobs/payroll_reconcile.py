"""Compare a payroll file with a payroll run on the server, item by item.

::

    figures = ItemFigures.of_body(body)            # what the file says for one employee
    server = ItemFigures.of_item(item_json)         # what the run holds for that employee
    server.same_as(figures)                         # True: nothing to send for this row
    patch = server.patch_to(figures)                # the PATCH body that makes them equal
    diff = compare(file_items, server_items)        # what differs, for the operator

The file is the truth for the period's regular run: an adopted draft is made equal to it
(add, PATCH, and with ``--prune`` DELETE), and a submitted run is only compared with it. Pure
functions over plain values, so tests call them without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: The item fields a PATCH may change (the contract's list); anything else needs a new item.
PATCHABLE = ("gross_amount", "hours", "memo")


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True, slots=True)
class ItemFigures:
    """One employee's pay on a run or in the file: amounts as Decimals, so "10.5" == "10.50"."""

    gross_amount: Decimal | None
    currency: str | None
    hours: Decimal | None
    memo: str | None

    @classmethod
    def of_body(cls, body: Mapping[str, Any]) -> ItemFigures:
        """The figures of an item request body (``PayrollRow.to_request_body``)."""
        return cls.of_item(body)

    @classmethod
    def of_item(cls, item: Mapping[str, Any]) -> ItemFigures:
        """The figures of a server item (``GET /payroll_runs/{id}/items``)."""
        memo = item.get("memo")
        return cls(
            gross_amount=_decimal(item.get("gross_amount")),
            currency=str(item["currency"]) if item.get("currency") is not None else None,
            hours=_decimal(item.get("hours")),
            # An empty memo and no memo print the same on a paystub.
            memo=str(memo) if memo else None,
        )

    def same_as(self, other: ItemFigures) -> bool:
        """True when nothing needs to change on the server."""
        return self == other

    def patch_to(self, wanted: ItemFigures) -> dict[str, str | None]:
        """The PATCH body that turns these figures into ``wanted`` (only the fields that
        differ; ``None`` clears hours or memo). Currency cannot be patched: see ``changed``."""
        patch: dict[str, str | None] = {}
        if self.gross_amount != wanted.gross_amount:
            patch["gross_amount"] = _cents(wanted.gross_amount)
        if self.hours != wanted.hours:
            patch["hours"] = _cents(wanted.hours)
        if self.memo != wanted.memo:
            patch["memo"] = wanted.memo
        return patch

    def changed(self, wanted: ItemFigures) -> list[str]:
        """The names of the fields that differ (no values: they are personal data)."""
        names = ("gross_amount", "currency", "hours", "memo")
        return [n for n in names if getattr(self, n) != getattr(wanted, n)]


def _cents(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class RunDifference:
    """How a run's items differ from the file, by employee id (FlexPay's ids, not names)."""

    changed: dict[str, list[str]]
    missing: list[str]
    extra: list[str]

    @property
    def none(self) -> bool:
        """True when the run holds exactly the file's items."""
        return not (self.changed or self.missing or self.extra)

    def sentences(self, *, limit: int = 5) -> list[str]:
        """Operator sentences, each naming at most ``limit`` employee ids."""
        found: list[str] = []
        if self.changed:
            ids = _some(sorted(self.changed), limit)
            fields = sorted({f for names in self.changed.values() for f in names})
            found.append(
                f"{len(self.changed)} items differ from the file ({', '.join(fields)}): {ids}"
            )
        if self.missing:
            found.append(
                f"{len(self.missing)} employees of the file have no item on the run: "
                f"{_some(sorted(self.missing), limit)}"
            )
        if self.extra:
            found.append(
                f"{len(self.extra)} items on the run are for employees not in the file: "
                f"{_some(sorted(self.extra), limit)}"
            )
        return found


def _some(ids: list[str], limit: int) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def compare(
    file_items: Mapping[str, ItemFigures], server_items: Mapping[str, ItemFigures]
) -> RunDifference:
    """What differs between the file's items and the run's, both keyed by employee id."""
    changed = {
        employee: server_items[employee].changed(figures)
        for employee, figures in file_items.items()
        if employee in server_items and not server_items[employee].same_as(figures)
    }
    missing = [employee for employee in file_items if employee not in server_items]
    extra = [employee for employee in server_items if employee not in file_items]
    return RunDifference(changed, missing, extra)


def total_of(items: Mapping[str, ItemFigures]) -> Decimal:
    """The sum of the items' gross amounts."""
    return sum((f.gross_amount or Decimal(0) for f in items.values()), Decimal(0))


__all__ = ["PATCHABLE", "ItemFigures", "RunDifference", "compare", "total_of"]
