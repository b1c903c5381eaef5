"""Request-body checks: each failure is a 422 ``ApiProblem`` naming the field.

Money is a JSON *string* holding a non-negative decimal with at most two places
(``"1234.50"``); floats, ``NaN``, ``Infinity``, exponents, signs and separators are refused.
Dates are ``YYYY-MM-DD`` and must exist on the calendar. Unknown fields are refused too, so a
client's typo is caught rather than silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal

from flexpay_batch.sim.problems import validation

_MONEY = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$")
_HOURS = re.compile(r"^(0|[1-9][0-9]{0,3})(\.[0-9]{1,2})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[A-Za-z]{2,}$")
_DIGITS = re.compile(r"^[0-9]+$")
_TAX_ID = re.compile(r"^[0-9][0-9-]{3,18}[0-9]$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")

Body = Mapping[str, object]


def reject_unknown(body: Body, allowed: frozenset[str], prefix: str = "") -> None:
    """422 ``unknown_field`` for the first field not in ``allowed`` (sorted, so stable)."""
    for name in sorted(set(body) - allowed):
        raise validation(f"{prefix}{name}", f"unknown field {prefix}{name}", "unknown_field")


def required(body: Body, name: str, prefix: str = "") -> object:
    """The value of a field that must be present and not null."""
    value = body.get(name)
    if value is None:
        raise validation(f"{prefix}{name}", f"{prefix}{name} is required", "missing_field")
    return value


def text(body: Body, name: str, *, max_len: int = 200, prefix: str = "") -> str:
    """A required non-blank printable string of at most ``max_len`` characters."""
    value = required(body, name, prefix)
    field = f"{prefix}{name}"
    if not isinstance(value, str) or not value.strip():
        raise validation(field, f"{field} must be a non-empty string")
    if len(value) > max_len or not _PRINTABLE.match(value):
        raise validation(field, f"{field} must be printable and at most {max_len} characters")
    return value


def optional_text(body: Body, name: str, *, max_len: int = 200, prefix: str = "") -> str | None:
    """Like ``text`` but absent or null gives None."""
    return None if body.get(name) is None else text(body, name, max_len=max_len, prefix=prefix)


def matching(body: Body, name: str, pattern: re.Pattern[str], what: str, prefix: str = "") -> str:
    """A required string that matches ``pattern``; ``what`` describes the expected form."""
    value = required(body, name, prefix)
    field = f"{prefix}{name}"
    if not isinstance(value, str) or not pattern.match(value):
        raise validation(field, f"{field} must be {what}")
    return value


def money(body: Body, name: str, prefix: str = "") -> Decimal:
    """A required money amount: a decimal string, non-negative, at most two places."""
    return Decimal(matching(body, name, _MONEY, 'a decimal string like "1234.50"', prefix))


def currency(body: Body, name: str = "currency", prefix: str = "") -> str:
    """A required ISO 4217 style code: three capital letters."""
    return matching(body, name, _CURRENCY, "a three-letter currency code like USD", prefix)


def iso_date(body: Body, name: str, prefix: str = "") -> date:
    """A required calendar date written ``YYYY-MM-DD``."""
    value = matching(body, name, _DATE, "a date written YYYY-MM-DD", prefix)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise validation(f"{prefix}{name}", f"{prefix}{name} is not a real date") from None


def count(body: Body, name: str) -> int:
    """A required non-negative JSON integer (booleans are not integers here)."""
    value = required(body, name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000_000:
        raise validation(name, f"{name} must be a non-negative integer")
    return value


def obj(body: Body, name: str, prefix: str = "") -> Body:
    """A required nested JSON object."""
    value = required(body, name, prefix)
    if not isinstance(value, dict):
        raise validation(f"{prefix}{name}", f"{prefix}{name} must be an object")
    return value


def json_object(value: object) -> dict[str, object]:
    """The parsed request body, which must be a JSON object (422 ``invalid_body`` if not)."""
    if not isinstance(value, dict):
        raise validation("body", "the request body must be a JSON object", "invalid_body")
    return value


@dataclass(frozen=True, slots=True)
class Compensation:
    kind: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class BankAccount:
    routing_number: str
    account_number: str


@dataclass(frozen=True, slots=True)
class EmployeeInput:
    """A valid ``POST /employees`` body."""

    external_id: str
    first_name: str
    last_name: str
    email: str
    hire_date: date
    pay_group_id: str
    employment_type: str
    compensation: Compensation
    tax_id: str | None
    bank_account: BankAccount | None


#: A body's fields are the model's: any other field is refused.
_EMPLOYEE_FIELDS = frozenset(field.name for field in fields(EmployeeInput))


def parse_employee(
    body: Body, *, pay_groups: frozenset[str], employment_types: frozenset[str]
) -> EmployeeInput:
    """Check a ``POST /employees`` body against the contract and the seeded reference data."""
    reject_unknown(body, _EMPLOYEE_FIELDS)
    external_id = text(body, "external_id", max_len=128)
    first_name = text(body, "first_name", max_len=100)
    last_name = text(body, "last_name", max_len=100)
    email = matching(body, "email", _EMAIL, "an email address")
    hire_date = iso_date(body, "hire_date")
    pay_group_id = text(body, "pay_group_id", max_len=64)
    if pay_group_id not in pay_groups:
        raise validation("pay_group_id", "pay_group_id is not a known pay group", "unknown_value")
    employment_type = text(body, "employment_type", max_len=64)
    if employment_type not in employment_types:
        raise validation(
            "employment_type", "employment_type is not a known employment type", "unknown_value"
        )
    return EmployeeInput(
        external_id=external_id,
        first_name=first_name,
        last_name=last_name,
        email=email,
        hire_date=hire_date,
        pay_group_id=pay_group_id,
        employment_type=employment_type,
        compensation=_compensation(obj(body, "compensation")),
        tax_id=_tax_id(body),
        bank_account=_bank_account(body),
    )


def _compensation(body: Body) -> Compensation:
    prefix = "compensation."
    reject_unknown(body, frozenset({"type", "amount", "currency"}), prefix)
    kind = required(body, "type", prefix)
    if kind not in ("salary", "hourly"):
        raise validation("compensation.type", "compensation.type must be salary or hourly")
    return Compensation(str(kind), money(body, "amount", prefix), currency(body, prefix=prefix))


def _tax_id(body: Body) -> str | None:
    if body.get("tax_id") is None:
        return None
    return matching(body, "tax_id", _TAX_ID, "digits, optionally with dashes (5 to 20)")


def _bank_account(body: Body) -> BankAccount | None:
    if body.get("bank_account") is None:
        return None
    account = obj(body, "bank_account")
    prefix = "bank_account."
    reject_unknown(account, frozenset({"routing_number", "account_number"}), prefix)
    routing = matching(account, "routing_number", re.compile(r"^[0-9]{9}$"), "9 digits", prefix)
    number = matching(account, "account_number", _DIGITS, "digits", prefix)
    if not 4 <= len(number) <= 17:
        raise validation("bank_account.account_number", "account_number must be 4 to 17 digits")
    return BankAccount(routing, number)


RUN_TYPES = ("regular", "off_cycle")
RUN_STATUSES = ("draft", "submitted")


@dataclass(frozen=True, slots=True)
class RunInput:
    """A valid ``POST /payroll_runs`` body; ``run_type`` is the JSON field ``type``."""

    pay_group_id: str
    period_start: date
    period_end: date
    pay_date: date
    run_type: str = "regular"


def one_of(body: Body, name: str, choices: tuple[str, ...], default: str) -> str:
    """An optional string from ``choices``; absent or null gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        raise validation(name, f"{name} must be one of {', '.join(choices)}")
    return str(value)


def parse_run(body: Body, *, pay_groups: frozenset[str]) -> RunInput:
    """Check a ``POST /payroll_runs`` body; the period must not end before it starts."""
    allowed = frozenset({"pay_group_id", "period_start", "period_end", "pay_date", "type"})
    reject_unknown(body, allowed)
    pay_group_id = text(body, "pay_group_id", max_len=64)
    if pay_group_id not in pay_groups:
        raise validation("pay_group_id", "pay_group_id is not a known pay group", "unknown_value")
    start = iso_date(body, "period_start")
    end = iso_date(body, "period_end")
    if end < start:
        raise validation("period_end", "period_end is before period_start")
    pay_date = iso_date(body, "pay_date")
    return RunInput(pay_group_id, start, end, pay_date, one_of(body, "type", RUN_TYPES, "regular"))


@dataclass(frozen=True, slots=True)
class ItemInput:
    """A valid ``POST /payroll_runs/{id}/items`` body."""

    employee_id: str
    gross_amount: Decimal
    currency: str
    hours: Decimal | None
    memo: str | None


def _hours(body: Body) -> Decimal | None:
    if body.get("hours") is None:
        return None
    return Decimal(matching(body, "hours", _HOURS, 'a decimal string like "40.00"'))


def _memo(body: Body) -> str | None:
    return optional_text(body, "memo", max_len=500)


def parse_item(body: Body) -> ItemInput:
    """Check one payroll item: employee, gross amount, currency, optional hours and memo."""
    reject_unknown(body, frozenset({"employee_id", "gross_amount", "currency", "hours", "memo"}))
    employee_id = text(body, "employee_id", max_len=64)
    gross = money(body, "gross_amount")
    code = currency(body)
    return ItemInput(employee_id, gross, code, _hours(body), _memo(body))


ITEM_PATCH_FIELDS = ("gross_amount", "hours", "memo")


@dataclass(frozen=True, slots=True)
class ItemPatch:
    """A valid ``PATCH /payroll_runs/{id}/items/{item_id}`` body.

    ``given`` names the fields the body carries; only those change. ``hours`` and ``memo``
    may be null (cleared); ``gross_amount`` may not.
    """

    given: frozenset[str]
    gross_amount: Decimal | None
    hours: Decimal | None
    memo: str | None


def parse_item_patch(body: Body) -> ItemPatch:
    """Check an item change: at least one of gross_amount, hours, memo, each as on create."""
    reject_unknown(body, frozenset(ITEM_PATCH_FIELDS))
    if not body:
        raise validation("body", "give at least one of gross_amount, hours, memo", "empty_patch")
    gross = None
    if "gross_amount" in body:
        if body["gross_amount"] is None:
            raise validation("gross_amount", "gross_amount cannot be null")
        gross = money(body, "gross_amount")
    return ItemPatch(frozenset(body), gross, _hours(body), _memo(body))


@dataclass(frozen=True, slots=True)
class SubmitInput:
    """A valid ``POST /payroll_runs/{id}/submit`` body."""

    expected_item_count: int
    expected_total: Decimal


def parse_submit(body: Body) -> SubmitInput:
    """Check the submit body: the client's item count and total, to compare with the server's."""
    reject_unknown(body, frozenset({"expected_item_count", "expected_total"}))
    return SubmitInput(count(body, "expected_item_count"), money(body, "expected_total"))
