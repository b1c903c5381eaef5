"""Records → ``ValidRow | Rejection``: schema checks, duplicate identities and totals.

::

    summary = ValidationSummary()
    for result in validate_rows(iter_records(path), OnboardingRow, source_name=str(path)):
        summary.add(result)
        if isinstance(result, Rejection):
            print(format_rejection(result, str(path)))

Contracts:

- One result per record, in order; nothing but a ``Rejection`` comes out of a bad record (no
  exception escapes for any record content).
- One rejection per row. Its ``field`` and ``code`` are those of the first failing field (in the
  model's field order); the ``reason`` states that failure and then lists the other failing
  fields, so an operator fixes a row in one go: ``"is not a real calendar date; also: email:
  must be an email address like name@example.com"``.
- A reason never quotes the input: it is built from pydantic's ``msg`` (our messages never contain
  the value; models hide input in errors) and our own fixed texts.
- The second and later rows with an identity already seen are rejected with code ``duplicate``
  and reason ``"<external id|employee> already used on row N"``. Only valid rows claim an
  identity, so a bad first row does not make a later good one a duplicate.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from hashlib import blake2b
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from flexpay_batch.input.models import PayrollRow, RowModel
from flexpay_batch.input.records import SourceRecord

__all__ = [
    "Rejection",
    "ValidRow",
    "ValidationSummary",
    "format_rejection",
    "validate_rows",
]

RowT = TypeVar("RowT", bound=RowModel)

_CODE_FOR_PYDANTIC_TYPE: Mapping[str, str] = {
    "missing": "missing",
    "extra_forbidden": "unknown_field",
    "literal_error": "invalid_choice",
    "model_type": "invalid_type",
    "dict_type": "invalid_type",
    "string_type": "invalid_type",
}
_REASON_FOR_CODE: Mapping[str, str] = {
    "missing": "is required but missing or empty",
    "unknown_field": "is not a column of this file format (misspelt?)",
    "invalid_type": "has the wrong type",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row refused before sending: where it is, which field, a stable code and a reason."""

    row: int
    line: int
    field: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class ValidRow(Generic[RowT]):
    """A row that passed validation, with its position in the file."""

    row: int
    line: int
    model: RowT


def validate_rows(
    records: Iterable[SourceRecord],
    model_cls: type[RowT],
    *,
    source_name: str,
) -> Iterator[ValidRow[RowT] | Rejection]:
    """Validate ``records`` against ``model_cls`` lazily, one result per record.

    ``source_name`` is the file as the operator named it. Results carry positions only (the
    caller passes the same name to :func:`format_rejection`); it is part of the signature so
    every stage that reports on a row knows which file it came from.
    """
    seen = _SeenIdentities()
    for record in records:
        yield _validate_record(record, model_cls, seen)


def _validate_record(
    record: SourceRecord, model_cls: type[RowT], seen: _SeenIdentities
) -> ValidRow[RowT] | Rejection:
    if record.problem is not None:
        problem = record.problem
        return Rejection(record.row, record.line, problem.field, problem.code, problem.reason)
    # A valid flat row (nearly every row) takes the model's shortcut; the rest, pydantic.
    model = model_cls.validate_clean(record.data)
    if model is None:
        try:
            model = model_cls.model_validate(record.data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return _rejection_from_errors(record, errors)
    first = seen.first_row(model.identity, record.row)
    if first is not None:
        reason = f"{model.identity_label} already used on row {first}"
        return Rejection(record.row, record.line, model.identity_field, "duplicate", reason)
    return ValidRow(record.row, record.line, model)


def _error_field(error: ErrorDetails) -> str | None:
    """The field an error is about: its location, or the ``field`` a model check names."""
    if error["loc"]:
        return ".".join(str(part) for part in error["loc"])
    named = error.get("ctx", {}).get("field")
    return str(named) if named is not None else None


def _error_code(error: ErrorDetails) -> str:
    return _CODE_FOR_PYDANTIC_TYPE.get(error["type"], error["type"])


def _error_reason(error: ErrorDetails) -> str:
    return _REASON_FOR_CODE.get(_error_code(error), error["msg"])


def _rejection_from_errors(record: SourceRecord, errors: list[ErrorDetails]) -> Rejection:
    """One rejection for all of a row's errors, led by the first."""
    first, *others = errors
    reason = _error_reason(first)
    if others:
        also = "; ".join(f"{_error_field(e) or 'row'}: {_error_reason(e)}" for e in others)
        reason = f"{reason}; also: {also}"
    return Rejection(record.row, record.line, _error_field(first), _error_code(first), reason)


def format_rejection(rejection: Rejection, source_name: str) -> str:
    """One line for an operator: ``"on.csv row 14, field hire_date: is not a real date"``.

    The physical line is added when it differs from the row (quoted newlines, blank lines).
    """
    where = f"{source_name} row {rejection.row}"
    if rejection.line != rejection.row:
        where += f" (line {rejection.line})"
    if rejection.field:
        where += f", field {rejection.field}"
    return f"{where}: {rejection.reason}"


class _SeenIdentities:
    """Identities seen so far → the row that first used each, in about 32 bytes per identity.

    A dict of strings would cost ~150 bytes per row (a few hundred MB at millions of rows).
    Instead each identity is reduced to a 64-bit BLAKE2b digest, kept in an open-addressing
    table of two flat arrays. Two different identities share a digest with probability about
    n²/2⁶⁵ (3·10⁻⁸ at a million rows); that would reject one valid row as a duplicate, never let
    a duplicate through.
    """

    _EMPTY = 0

    def __init__(self, capacity: int = 1024) -> None:
        self._keys = array("Q", bytes(8 * capacity))
        self._rows = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @staticmethod
    def _digest(identity: str) -> int:
        key = int.from_bytes(blake2b(identity.encode(), digest_size=8).digest(), "little")
        return key or 1  # 0 marks an empty slot

    def first_row(self, identity: str, row: int) -> int | None:
        """The row that first used ``identity``; records ``row`` and returns None if new."""
        key = self._digest(identity)
        slot = key & self._mask
        while (found := self._keys[slot]) != self._EMPTY:
            if found == key:
                return self._rows[slot]
            slot = (slot + 1) & self._mask
        self._keys[slot] = key
        self._rows[slot] = row
        self._size += 1
        if self._size * 2 > len(self._keys):
            self._grow()
        return None

    def _grow(self) -> None:
        keys, rows = self._keys, self._rows
        capacity = 2 * len(keys)
        self._keys = array("Q", bytes(8 * capacity))
        self._rows = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        for key, row in zip(keys, rows, strict=True):
            if key != self._EMPTY:
                slot = key & self._mask
                while self._keys[slot] != self._EMPTY:
                    slot = (slot + 1) & self._mask
                self._keys[slot] = key
                self._rows[slot] = row


@dataclass(slots=True)
class ValidationSummary:
    """Counts over validation results, for the ``validate`` command and reports.

    ``gross_by_currency`` sums ``gross_amount`` of valid payroll rows (empty for onboarding):
    with ``valid`` it is what a payroll run's submit expects.
    """

    rows: int = 0
    valid: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)
    gross_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        """Rows rejected for any reason."""
        return self.rows - self.valid

    def add(self, result: ValidRow[Any] | Rejection) -> None:
        """Count one result."""
        self.rows += 1
        if isinstance(result, Rejection):
            self.rejected_by_code[result.code] = self.rejected_by_code.get(result.code, 0) + 1
            return
        self.valid += 1
        model = result.model
        if isinstance(model, PayrollRow):
            total = self.gross_by_currency.get(model.currency, Decimal("0.00"))
            self.gross_by_currency[model.currency] = total + model.gross_amount
