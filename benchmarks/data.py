"""Synthetic onboarding files: every row valid, every ``external_id`` unique, deterministic."""

from __future__ import annotations

import csv
from pathlib import Path

from flexpay_batch.input.columns import ONBOARDING_COLUMNS

FIRST_NAMES = ("Olivia", "Liam", "Emma", "Noah", "Amelia", "Mateo", "Priya", "Wei", "Kwame")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Patel", "Okafor", "Kowalski", "Silva", "Park")
PAY_GROUPS = ("pg_weekly", "pg_biweekly", "pg_semimonthly", "pg_monthly")
EMPLOYMENT_TYPES = ("full_time", "part_time", "contractor")
#: Real-format routing numbers that pass the ABA checksum (from samples/onboarding.csv).
ROUTING_NUMBERS = ("036282766", "052183001", "013349059", "073247382")


def onboarding_row(i: int) -> list[str]:
    """Row number ``i`` (0-based) of the synthetic file, as CSV cells.

    Tax ids have the invented ``9XX-00-XXXX`` shape no real SSN or ITIN has.
    """
    first = FIRST_NAMES[i % len(FIRST_NAMES)]
    last = LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
    salaried = i % 3 != 0
    return [
        f"B{i:08d}",
        first,
        last,
        f"{first.lower()}.{last.lower()}.{i}@example.com",
        f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        PAY_GROUPS[i % len(PAY_GROUPS)],
        EMPLOYMENT_TYPES[i % len(EMPLOYMENT_TYPES)],
        "salary" if salaried else "hourly",
        f"{50000 + i % 50000}.00" if salaried else f"{20 + i % 30}.50",
        "USD",
        f"9{i % 100:02d}00{i % 10000:04d}",
        ROUTING_NUMBERS[i % len(ROUTING_NUMBERS)],
        f"{1000000 + i}",
    ]


def write_onboarding_csv(path: Path, rows: int, *, first: int = 0) -> Path:
    """Write ``rows`` valid onboarding rows (plus the header) to ``path``, numbered from
    ``first`` (disjoint slices for several processes); return ``path``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ONBOARDING_COLUMNS)
        writer.writerows(onboarding_row(i) for i in range(first, first + rows))
    return path


def request_body(cells: dict[str, str]) -> dict[str, object]:
    """The ``POST /employees`` body for one CSV record, built the way a plain script would."""
    return {
        "external_id": cells["external_id"],
        "first_name": cells["first_name"],
        "last_name": cells["last_name"],
        "email": cells["email"],
        "hire_date": cells["hire_date"],
        "pay_group_id": cells["pay_group_id"],
        "employment_type": cells["employment_type"],
        "compensation": {
            "type": cells["compensation_type"],
            "amount": cells["compensation_amount"],
            "currency": cells["currency"],
        },
        "tax_id": cells["tax_id"],
        "bank_account": {
            "routing_number": cells["bank_routing_number"],
            "account_number": cells["bank_account_number"],
        },
    }


def read_bodies(path: Path) -> list[dict[str, object]]:
    """Every request body of the CSV at ``path`` (``csv.DictReader``, no validation)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [request_body(cells) for cells in csv.DictReader(handle)]
