"""Row models: field rules, request bodies, money, and personal data kept out of reprs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from flexpay_batch.input.columns import KNOWN_COLUMNS, ONBOARDING_COLUMNS, PAYROLL_COLUMNS
from flexpay_batch.input.models import (
    MONEY_MAX,
    OnboardingRow,
    PayrollRow,
    parse_money,
)
from tests.input.rows import ONBOARDING_ROW as ROW
from tests.input.rows import PAYROLL_ROW as PAY


def _codes(model: type[OnboardingRow | PayrollRow], data: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [e["type"] for e in caught.value.errors()]


def test_onboarding_body_matches_the_contract() -> None:
    """A valid row becomes the POST /employees body with money as a two-place string."""
    as_read = ONBOARDING_COLUMNS[:7]  # external_id to employment_type: sent as they are
    assert OnboardingRow.model_validate(ROW).to_request_body() == {
        **{column: ROW[column] for column in as_read},
        "compensation": {"type": "salary", "amount": "85000.00", "currency": "USD"},
        "tax_id": "123-45-6789",
        "bank_account": {"routing_number": "011000015", "account_number": "000123456789"},
    }


def test_optional_fields_are_left_out_of_the_body() -> None:
    """Without tax id and bank details the body has neither key; blank cells count as absent."""
    row = OnboardingRow.model_validate(
        {**ROW, "tax_id": " ", "bank_routing_number": "", "bank_account_number": None}
    )
    body = row.to_request_body()
    assert "tax_id" not in body
    assert "bank_account" not in body


def test_nested_api_shape_equals_flat_columns() -> None:
    """JSONL may nest compensation and bank_account like the API body; the result is the same."""
    nested: dict[str, object] = {
        k: v
        for k, v in ROW.items()
        if not k.startswith(("compensation", "bank")) and k != "currency"
    }
    nested["compensation"] = {"type": "salary", "amount": Decimal("85000"), "currency": "USD"}
    nested["bank_account"] = {"routing_number": "011000015", "account_number": "000123456789"}
    assert OnboardingRow.model_validate(nested) == OnboardingRow.model_validate(ROW)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"compensation": {"amount": "1.00"}}, "conflict"),
        ({"compensation": "salary"}, "invalid_type"),
        ({"bank_account": {"iban": "x"}}, "unknown_field"),
    ],
)
def test_bad_nesting_is_refused(change: dict[str, object], code: str) -> None:
    """A key given flat and nested, a non-object, or an unknown nested key is an error."""
    assert _codes(OnboardingRow, {**ROW, **change}) == [code]


def test_personal_values_never_show_in_repr_or_str() -> None:
    """repr and str show no personal value; even a plain model_dump masks the secrets."""
    row = OnboardingRow.model_validate(ROW)
    for text in (repr(row), str(row)):
        for secret in ("Ada", "Lovelace", "ada@example.com", "85000", "123-45-6789", "0001234"):
            assert secret not in text
    dumped = str(row.model_dump())
    assert "123-45-6789" not in dumped
    assert "000123456789" not in dumped


def test_validation_error_text_carries_no_input() -> None:
    """str(ValidationError) never shows the offending values."""
    bad = {**ROW, "email": "SECRET-mail", "hire_date": "SECRET-date", "tax_id": "SECRET-tax"}
    with pytest.raises(ValidationError) as caught:
        OnboardingRow.model_validate(bad)
    assert "SECRET" not in str(caught.value)
    assert "SECRET" not in repr(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", "0.00"), ("12.5", "12.50"), (" 1234.56 ", "1234.56"), ("007.10", "7.10")],
)
def test_money_accepts_plain_decimals(text: str, expected: str) -> None:
    """Plain decimals with up to two places are accepted and kept in cents."""
    assert str(parse_money(text)) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("NaN", "invalid_decimal"),
        ("-Infinity", "invalid_decimal"),
        ("1e3", "invalid_decimal"),
        ("1E+3", "invalid_decimal"),
        ("1,234.56", "invalid_decimal"),
        ("1234,56", "invalid_decimal"),
        ("$100", "invalid_decimal"),
        ("100 USD", "invalid_decimal"),
        ("+5", "invalid_decimal"),
        (".5", "invalid_decimal"),
        ("5.", "invalid_decimal"),
        ("=1+2", "invalid_decimal"),
        ("٣", "invalid_decimal"),
        ("1.005", "too_many_decimals"),
        ("-0.01", "negative"),
        ("1000000000", "too_large"),
        (1.5, "invalid_decimal"),
        (True, "invalid_decimal"),
        ([1], "invalid_decimal"),
        (Decimal("1E+3"), "invalid_decimal"),
        (Decimal("1.500"), "too_many_decimals"),
    ],
)
def test_money_refuses_everything_else(value: object, code: str) -> None:
    """Each malformed amount is refused with the code that says why."""
    assert _codes(PayrollRow, {**PAY, "gross_amount": value}) == [code]


@given(st.decimals(min_value=0, max_value=MONEY_MAX, places=2, allow_nan=False))
def test_money_round_trips_through_its_string(amount: Decimal) -> None:
    """Any valid amount serialises to a string that parses back to the same amount."""
    row = PayrollRow.model_validate({**PAY, "gross_amount": format(amount, "f")})
    text = row.to_request_body("emp_1")["gross_amount"]
    assert isinstance(text, str)
    assert parse_money(text) == amount
    assert row.model_dump(mode="json")["gross_amount"] == text


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2026-02-30", "invalid_date"),
        ("2026-13-01", "invalid_date"),
        ("01/05/2026", "date_format"),
        ("2026/01/05", "date_format"),
        ("2026-1-5", "date_format"),
        ("20260105", "date_format"),
        ("2026-01-05T00:00", "date_format"),
        (20260105, "date_format"),
    ],
)
def test_hire_date_must_be_a_real_iso_date(value: object, code: str) -> None:
    """Only existing YYYY-MM-DD dates are accepted."""
    assert _codes(OnboardingRow, {**ROW, "hire_date": value}) == [code]


def test_leap_day_and_date_objects_are_accepted() -> None:
    """2024-02-29 exists; a ``date`` passes through."""
    assert OnboardingRow.model_validate({**ROW, "hire_date": "2024-02-29"}).hire_date == date(
        2024, 2, 29
    )
    assert OnboardingRow.model_validate({**ROW, "hire_date": date(2026, 1, 1)}).hire_date.year


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("\u00a0E-1\u200b ", "E-1"), ("E\u00a01", "E1"), ("0042", "0042"), (1234, "1234")],
)
def test_external_id_is_cleaned(raw: object, clean: str) -> None:
    """Padding, NBSP and zero-width characters go; leading zeros stay; integers are written."""
    assert OnboardingRow.model_validate({**ROW, "external_id": raw}).identity == clean


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("external_id", "1.9143E+18", "excel_mangled"),
        ("external_id", "1234.0", "excel_mangled"),
        ("external_id", "x" * 129, "too_long"),
        ("external_id", "E\t1", "control_character"),
        ("external_id", 1.5, "invalid_type"),
        ("first_name", "Ada\nLovelace", "control_character"),
        ("first_name", "Ada\u202eecalevol", "control_character"),
        ("first_name", "x" * 101, "too_long"),
        ("email", "ada@example", "invalid_email"),
        ("email", "ada @example.com", "invalid_email"),
        ("email", "a@@example.com", "invalid_email"),
        ("currency", "US", "invalid_currency"),
        ("currency", "$", "invalid_currency"),
        ("compensation_type", "weekly", "literal_error"),
        ("tax_id", "1234", "invalid_tax_id"),
        ("tax_id", "12a45", "invalid_tax_id"),
        ("bank_routing_number", "11000015", "invalid_routing_number"),
        ("bank_routing_number", "011000016", "invalid_routing_number"),
        ("bank_account_number", "123", "invalid_account_number"),
        ("bank_account_number", "12345678901234567890", "invalid_account_number"),
        ("nickname", "Ace", "extra_forbidden"),
    ],
)
def test_onboarding_field_rules(field: str, value: object, code: str) -> None:
    """Each field refuses its malformed forms with a stable code."""
    assert _codes(OnboardingRow, {**ROW, field: value}) == [code]


def test_required_fields_are_missing_when_blank() -> None:
    """A blank required cell is ``missing``, just like an absent one."""
    assert _codes(OnboardingRow, {**ROW, "first_name": "\u200b ", "currency": None}) == [
        "missing",
        "missing",
    ]


@pytest.mark.parametrize("absent", ["bank_routing_number", "bank_account_number"])
def test_bank_details_come_both_or_neither(absent: str) -> None:
    """Half the bank details is an error naming the missing half."""
    with pytest.raises(ValidationError) as caught:
        OnboardingRow.model_validate({**ROW, absent: ""})
    (error,) = caught.value.errors()
    assert error["type"] == "bank_incomplete"
    assert error.get("ctx", {})["field"] == absent


def test_choice_and_currency_are_case_insensitive() -> None:
    """``Hourly`` and ``usd`` normalise to the contract's spelling."""
    row = OnboardingRow.model_validate({**ROW, "compensation_type": " Hourly", "currency": "usd"})
    assert (row.compensation_type, row.currency) == ("hourly", "USD")


@pytest.mark.parametrize("first_name", ["=HYPERLINK(1)", "+SUM(A1)", "-Smith", "@cmd", "\tTab"])
def test_formula_looking_text_is_accepted(first_name: str) -> None:
    """Formula-looking names are data for a JSON API; outputs escape them when writing CSV."""
    row = OnboardingRow.model_validate({**ROW, "first_name": first_name})
    assert row.first_name == first_name.strip()


def test_payroll_identity_and_body() -> None:
    """A payroll row names its employee as ext:/emp: and builds the item body."""
    row = PayrollRow.model_validate(PAY)
    assert row.identity == "ext:E-1001"
    assert row.identity_field == "employee_external_id"
    assert row.to_request_body("emp_9") == {
        "employee_id": "emp_9",
        "gross_amount": "1250.50",
        "currency": "USD",
        "hours": "40.00",
        "memo": "week 1",
    }
    by_id = PayrollRow.model_validate(
        {"employee_id": "emp_9", "gross_amount": "1", "currency": "EUR"}
    )
    assert by_id.identity == "emp:emp_9"
    assert by_id.to_request_body("emp_9") == {
        "employee_id": "emp_9",
        "gross_amount": "1.00",
        "currency": "EUR",
    }


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"employee_id": "emp_1"}, "employee_reference"),
        ({"employee_external_id": None}, "employee_reference"),
        ({"hours": "744.01"}, "too_large"),
        ({"hours": "-1"}, "negative"),
        ({"memo": "x" * 501}, "too_long"),
    ],
)
def test_payroll_field_rules(change: dict[str, Any], code: str) -> None:
    """Exactly one employee reference; hours within a pay period; memo bounded."""
    assert _codes(PayrollRow, {**PAY, **change}) == [code]


def test_known_columns_cover_both_models() -> None:
    """Every model field is a known column, so headers using them are recognised."""
    assert set(OnboardingRow.model_fields) == set(ONBOARDING_COLUMNS)
    assert set(PayrollRow.model_fields) == set(PAYROLL_COLUMNS)
    assert set(ONBOARDING_COLUMNS) | set(PAYROLL_COLUMNS) <= KNOWN_COLUMNS


def test_rows_are_immutable() -> None:
    """Validated rows are frozen: what was validated is what is sent."""
    row = PayrollRow.model_validate(PAY)
    with pytest.raises(ValidationError):
        row.currency = "EUR"  # type: ignore[misc]
