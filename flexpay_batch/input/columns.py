"""Column names of the input files, per job kind: the one home of every header spelling.

::

    from flexpay_batch.input.columns import COLUMN_ALIASES, ONBOARDING_COLUMNS
    COLUMN_ALIASES["ssn"]   # "tax_id"

The row models declare one field per name here, the readers recognise headers by them, the job
registry names each kind's columns and its results.csv reference columns with them, and the
tests and benchmarks write their files with them. A column added to a kind is added here first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "COLUMN_ALIASES",
    "KNOWN_COLUMNS",
    "NESTED_FIELDS",
    "ONBOARDING_COLUMNS",
    "ONBOARDING_REFERENCE_COLUMNS",
    "PAYROLL_COLUMNS",
    "PAYROLL_REFERENCE_COLUMNS",
    "normalise_column",
]

ONBOARDING_COLUMNS: Final[tuple[str, ...]] = (
    "external_id",
    "first_name",
    "last_name",
    "email",
    "hire_date",
    "pay_group_id",
    "employment_type",
    "compensation_type",
    "compensation_amount",
    "currency",
    "tax_id",
    "bank_routing_number",
    "bank_account_number",
)
"""Flat column names of an onboarding file (CSV header or JSONL keys), in the usual order."""

ONBOARDING_REFERENCE_COLUMNS: Final[tuple[str, ...]] = ("external_id",)
"""The column that names an onboarding row to the operator (results.csv ``external_id``)."""

PAYROLL_COLUMNS: Final[tuple[str, ...]] = (
    "employee_external_id",
    "employee_id",
    "hours",
    "gross_amount",
    "currency",
    "memo",
)
"""Column names of a payroll file: one of the two employee references, then the item."""

PAYROLL_REFERENCE_COLUMNS: Final[tuple[str, ...]] = ("employee_external_id", "employee_id")
"""The columns that name a payroll row's employee, the first non-blank one wins."""

NESTED_FIELDS: Final[Mapping[str, Mapping[str, str]]] = {
    "compensation": {
        "type": "compensation_type",
        "amount": "compensation_amount",
        "currency": "currency",
    },
    "bank_account": {
        "routing_number": "bank_routing_number",
        "account_number": "bank_account_number",
    },
}
"""JSONL may nest like the API body; each nested key maps to its flat column name."""

COLUMN_ALIASES: Final[Mapping[str, str]] = {
    "email_address": "email",
    "e_mail": "email",
    "ssn": "tax_id",
    "tin": "tax_id",
    "routing_number": "bank_routing_number",
    "account_number": "bank_account_number",
    "gross_pay": "gross_amount",
    "external_employee_id": "employee_external_id",
}
"""Other spellings of a column (after header normalisation) and the canonical name they mean."""

KNOWN_COLUMNS: Final[frozenset[str]] = frozenset(
    (*ONBOARDING_COLUMNS, *PAYROLL_COLUMNS, *NESTED_FIELDS, *COLUMN_ALIASES)
)
"""Every name a header may use; a header with none of them is not a header at all."""


_COLUMN_SEPARATORS = re.compile(r"[\s\-./]+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def normalise_column(name: str) -> str:
    """A header cell as a canonical column name.

    Zero-width characters go, no-break spaces become spaces, case folds, runs of spaces, dashes,
    dots and slashes become one underscore, and known aliases map to their column:
    ``" E-Mail Address "`` → ``email``.
    """
    text = name.translate(_ZERO_WIDTH).replace("\u00a0", " ").strip().casefold()
    text = _COLUMN_SEPARATORS.sub("_", text).strip("_")
    return COLUMN_ALIASES.get(text, text)
