"""validate_rows: rejections, duplicates, messages, summaries, and never an exception."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.input.columns import ONBOARDING_COLUMNS, PAYROLL_COLUMNS
from flexpay_batch.input.models import (
    OnboardingRow,
    PayrollRow,
)
from flexpay_batch.input.readers import RowProblem, SourceRecord, iter_records
from flexpay_batch.input.validation import (
    Rejection,
    ValidationSummary,
    ValidRow,
    _SeenIdentities,
    format_rejection,
    validate_rows,
)
from tests.harness import peak_allocation
from tests.input.rows import ONBOARDING_ROW as ROW


def _record(row: int, data: dict[str, object] | None, line: int | None = None) -> SourceRecord:
    return SourceRecord(row, line or row, data, None)


def _pay(row: int, ref: str, amount: str, currency: str = "USD") -> SourceRecord:
    data: dict[str, object] = {
        "employee_external_id": ref,
        "gross_amount": amount,
        "currency": currency,
    }
    return _record(row, data)


def test_row_problem_becomes_a_rejection() -> None:
    """A reader's row problem passes through as a rejection at the same position."""
    problem = RowProblem("memo", "nul_byte", "contains a NUL byte")
    (result,) = validate_rows([SourceRecord(7, 9, None, problem)], PayrollRow, source_name="f")
    assert result == Rejection(7, 9, "memo", "nul_byte", "contains a NUL byte")


def test_one_rejection_lists_every_failing_field() -> None:
    """The first failing field leads; the others are named in the same reason."""
    data = {**ROW, "email": "nope", "hire_date": "2026-02-30", "currency": ""}
    (result,) = validate_rows([_record(2, data)], OnboardingRow, source_name="f")
    assert isinstance(result, Rejection)
    assert (result.field, result.code) == ("email", "invalid_email")
    assert result.reason == (
        "must be an email address like name@example.com; also: "
        "hire_date: is not a real calendar date; currency: is required but missing or empty"
    )


def test_reasons_never_contain_the_values() -> None:
    """Invalid personal values appear in no reason, whatever failed."""
    data: dict[str, object] = {k: f"SECRET-{k}" for k in ONBOARDING_COLUMNS}
    records = [_record(2, data), _record(3, {**ROW, "tax_id": "SECRET-1"})]
    for result in validate_rows(records, OnboardingRow, source_name="f"):
        assert isinstance(result, Rejection)
        assert "SECRET" not in result.reason


def test_duplicates_are_rejected_after_the_first_valid_occurrence() -> None:
    """A reused identity is a duplicate naming the first row; invalid rows claim no identity."""
    records = [
        _pay(2, "E1", "10"),
        _pay(3, "E2", "bad"),
        _pay(4, "E1", "20"),
        _pay(5, "E2", "30"),
        _pay(6, "E2", "40"),
    ]
    results = list(validate_rows(records, PayrollRow, source_name="f"))
    assert [type(r).__name__ for r in results] == [
        "ValidRow",
        "Rejection",
        "Rejection",
        "ValidRow",
        "Rejection",
    ]
    assert results[2] == Rejection(
        4, 4, "employee_external_id", "duplicate", "employee already used on row 2"
    )
    assert isinstance(results[4], Rejection)
    assert results[4].reason == "employee already used on row 5"


def test_onboarding_duplicate_message() -> None:
    """Onboarding duplicates are reported against external_id."""
    results = list(
        validate_rows([_record(2, ROW), _record(9, ROW)], OnboardingRow, source_name="f")
    )
    assert results[1] == Rejection(
        9, 9, "external_id", "duplicate", "external id already used on row 2"
    )


@pytest.mark.parametrize(
    ("rejection", "message"),
    [
        (
            Rejection(14, 14, "hire_date", "invalid_date", "is not a real calendar date"),
            "on.csv row 14, field hire_date: is not a real calendar date",
        ),
        (
            Rejection(5, 7, None, "short_row", "has 2 cells but the header has 3 columns"),
            "on.csv row 5 (line 7): has 2 cells but the header has 3 columns",
        ),
    ],
)
def test_format_rejection(rejection: Rejection, message: str) -> None:
    """Messages name file, row, the line when it differs, and the field when known."""
    assert format_rejection(rejection, "on.csv") == message


def summarize(results: Iterable[ValidRow[Any] | Rejection]) -> ValidationSummary:
    """Feed ``results`` to a summary one by one, as the validate command does."""
    summary = ValidationSummary()
    for result in results:
        summary.add(result)
    return summary


def test_summary_counts_and_totals() -> None:
    """The summary counts rows, valid rows, rejections by code and gross per currency."""
    records = [
        _pay(2, "E1", "10.10"),
        _pay(3, "E2", "0.90"),
        _pay(4, "E3", "5", "EUR"),
        _pay(5, "E1", "1"),
        _pay(6, "E4", "-1"),
    ]
    summary = summarize(validate_rows(records, PayrollRow, source_name="f"))
    assert (summary.rows, summary.valid, summary.rejected) == (5, 3, 2)
    assert summary.rejected_by_code == {"duplicate": 1, "negative": 1}
    assert summary.gross_by_currency == {"USD": Decimal("11.00"), "EUR": Decimal("5.00")}


def test_seen_identities_grow_and_remember_first_rows() -> None:
    """The compact identity table keeps every first row across many resizes."""
    seen = _SeenIdentities(capacity=4)
    for n in range(20_000):
        assert seen.first_row(f"id-{n}", n + 2) is None
    assert len(seen) == 20_000
    for n in range(0, 20_000, 997):
        assert seen.first_row(f"id-{n}", 99) == n + 2


def test_validating_a_large_file_keeps_memory_flat(tmp_path: Path) -> None:
    """Validation streams: a 2 MB file needs well under 1.5 MB, identity table included."""
    path = tmp_path / "pay.csv"
    with path.open("w") as out:
        out.write("employee_external_id,hours,gross_amount,currency,memo\n")
        for n in range(5_000):
            out.write(f"E{n},40,{n}.25,USD,{'m' * 400}\n")
    summary, peak = peak_allocation(
        lambda: summarize(validate_rows(iter_records(path), PayrollRow, source_name=str(path)))
    )
    assert (summary.rows, summary.valid) == (5_000, 5_000)
    assert peak < 1_500_000


_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "1e3", "NaN", "2026-02-30", "USD", "salary", "a@b.co"]),
    st.none(),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
_KEYS = st.one_of(
    st.sampled_from([*ONBOARDING_COLUMNS, *PAYROLL_COLUMNS, "compensation", "bank_account"]),
    st.text(max_size=10),
)


@given(rows=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=14), max_size=5))
def test_arbitrary_rows_only_ever_give_results(rows: list[dict[str, object]]) -> None:
    """Any mapping of any values yields a ValidRow or a Rejection, never an exception."""
    records = [_record(n + 2, row) for n, row in enumerate(rows)]
    for model in (OnboardingRow, PayrollRow):
        results = list(validate_rows(records, model, source_name="f"))
        assert len(results) == len(rows)
        for result in results:
            assert isinstance(result, ValidRow | Rejection)
            if isinstance(result, Rejection):
                assert result.code
                assert result.reason


@given(
    base=st.fixed_dictionaries({k: st.just(v) for k, v in ROW.items()}),
    field=st.sampled_from(ONBOARDING_COLUMNS),
    value=st.text(max_size=40),
)
def test_one_arbitrary_field_on_a_good_row(base: dict[str, object], field: str, value: str) -> None:
    """Replacing one field of a good row with any text gives a result naming that field or none."""
    (result,) = validate_rows([_record(2, {**base, field: value})], OnboardingRow, source_name="f")
    if isinstance(result, Rejection):
        assert result.field in (field, "bank_account_number", "bank_routing_number")
