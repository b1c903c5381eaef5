"""Row models: one validated input row each, and the request body it becomes.

::

    row = OnboardingRow.model_validate(record.data)   # pydantic.ValidationError if malformed
    row.identity                                      # "E-1001": the key duplicates are found by
    row.to_request_body()                             # POST /employees JSON, money as strings

Contracts shared by every field:

- Text is cleaned before it is checked: zero-width characters (U+200B-U+200D, U+2060, U+FEFF)
  are removed, a no-break space is a space (removed altogether inside identifiers), and
  surrounding whitespace is stripped. A value that is blank after cleaning counts as absent, so
  an empty optional cell is "not given" and an empty required cell is ``missing``.
- Control characters (including tab, CR and LF inside a value) are refused. Values that merely
  *look* like spreadsheet formulas (``=``, ``+``, ``-``, ``@``) are accepted: they are data for a
  JSON API, where they are harmless; every CSV we write escapes them (``outputs.py``).
- Money is :data:`Money`: a plain decimal (``1234.56``), at most two places, never negative, below
  one billion. Floats, ``NaN``, ``Infinity``, exponents (``1e3``), thousands separators or decimal
  commas (``1,234.56``), signs and currency symbols (``$100``) are refused with a reason saying
  which. Values are kept as ``Decimal`` quantised to cents and serialised as strings.
- Dates are ISO ``YYYY-MM-DD`` and must exist (``2026-02-30`` is refused).
- ``currency`` is required (three letters, upper-cased): a payroll tool does not guess money's
  unit, so a file without a currency column has every row rejected with ``missing``.
- Unknown fields are refused (``unknown_field``) so a misspelt optional column (``taxid``) never
  silently drops data; a column that is present but empty is harmless.
- Every error is a ``PydanticCustomError`` whose ``type`` is a stable code (``invalid_decimal``,
  ``invalid_date`` ...) and whose message never quotes the value; models also set
  ``hide_input_in_errors`` so even ``str(ValidationError)`` carries no personal data.
- Personal fields are ``repr=False``, tax id and account number are ``SecretStr``: a stray
  ``log.info(row)`` shows neither.
"""

from __future__ import annotations

import re
import unicodedata
from abc import abstractmethod
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _json_string
from operator import itemgetter
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, cast, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flexpay_batch.input.columns import NESTED_FIELDS

__all__ = [
    "MONEY_MAX",
    "Currency",
    "Hours",
    "Money",
    "OnboardingRow",
    "PayrollRow",
    "RowModel",
    "clean_text",
    "parse_money",
]

MONEY_MAX = Decimal("999999999.99")
"""Largest amount accepted (just under a billion): anything larger is a typo, not a salary."""

HOURS_MAX = Decimal("744")
"""Most hours one pay period can hold: a 31-day month, around the clock."""

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_NBSP = "\u00a0"
_DIGITS = re.compile(r"[0-9]+")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_EXPONENT = re.compile(r"[+-]?[0-9]*\.?[0-9]+[eE][+-]?[0-9]+")
_NOT_NUMBERS = frozenset({"nan", "snan", "inf", "infinity"})
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EXCEL_SCIENTIFIC = re.compile(r"[0-9]+(?:\.[0-9]+)?[eE]\+[0-9]+")
_EXCEL_DECIMAL = re.compile(r"[0-9]+\.0+")
_EMAIL = re.compile(r"[^@\s]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[A-Za-z]{2,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_TAX_ID = re.compile(r"[0-9][0-9-]{3,18}[0-9]")


def _error(code: str, message: str) -> PydanticCustomError:
    """A field error whose ``type`` is ``code``; ``message`` must never contain the value."""
    return PydanticCustomError(code, message)


def clean_text(value: str, *, keep_spaces: bool = True) -> str:
    """``value`` without zero-width characters and surrounding whitespace.

    A no-break space becomes a space when ``keep_spaces`` (names), and disappears otherwise
    (identifiers, where it is always an artefact of copy and paste).
    """
    if not value.isascii():  # fast path: ASCII has neither zero-width nor no-break spaces
        value = value.translate(_ZERO_WIDTH).replace(_NBSP, " " if keep_spaces else "")
    return value.strip()


def _has_control(text: str) -> bool:
    # Cc covers NUL, tab, CR, LF, DEL and C1; Cf covers bidi overrides that disguise text.
    # isprintable() is false for both (and for some harmless spaces): a C-speed first pass.
    if text.isprintable():
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def _as_text(value: object, *, keep_spaces: bool = True) -> str:
    """The cleaned string form of a scalar: strings as they are, integers written out."""
    if isinstance(value, str):
        # ``clean_text`` inlined for the usual ASCII cell (every field of every row comes here).
        text = value.strip() if value.isascii() else clean_text(value, keep_spaces=keep_spaces)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise _error("invalid_type", "must be text")
    if _has_control(text):
        raise _error("control_character", "contains a control character (tab, line break, NUL)")
    return text


def _text(max_len: int) -> Callable[[object], str]:
    """A validator for a human-readable text of at most ``max_len`` characters."""

    def validate(value: object) -> str:
        text = _as_text(value)
        if len(text) > max_len:
            raise _error("too_long", f"must be at most {max_len} characters")
        return text

    return validate


def _identifier(max_len: int) -> Callable[[object], str]:
    """A validator for an identifier, refusing the forms Excel turns numbers into."""

    def validate(value: object) -> str:
        text = _as_text(value, keep_spaces=False)
        if _EXCEL_SCIENTIFIC.fullmatch(text):
            raise _error(
                "excel_mangled",
                "looks like a number Excel wrote in scientific notation; format the column "
                "as text and export again",
            )
        if _EXCEL_DECIMAL.fullmatch(text):
            raise _error(
                "excel_mangled",
                "looks like a number Excel turned into a decimal; format the column as text "
                "and export again",
            )
        if len(text) > max_len:
            raise _error("too_long", f"must be at most {max_len} characters")
        return text

    return validate


def _decimal_text(value: object) -> str:
    """The text of a decimal input: strings cleaned, ``int`` and ``Decimal`` written out."""
    if isinstance(value, bool | float):
        # A float has already lost the cents it was meant to carry; demand the exact text.
        raise _error("invalid_decimal", "must be a decimal string like 1234.56, not a float")
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return clean_text(value)
    raise _error("invalid_decimal", "must be a decimal number like 1234.56")


def _explain_bad_decimal(text: str) -> PydanticCustomError:
    """The error for a text that is not a plain decimal, saying what is wrong with it."""
    lowered = text.lower().lstrip("+-")
    if lowered in _NOT_NUMBERS:
        return _error("invalid_decimal", "must be a finite amount, written in digits")
    if _EXPONENT.fullmatch(text):
        return _error("invalid_decimal", "must be written out in full, without an exponent")
    if any(not (ch.isdigit() or ch in ".,-+") for ch in text):
        return _error(
            "invalid_decimal",
            "must be digits and a decimal point only; no currency symbols, codes, letters or "
            "spaces (the currency has its own column)",
        )
    if "," in text:
        return _error(
            "invalid_decimal",
            "must not contain thousands separators or a decimal comma; write 1234.56",
        )
    if text.startswith("-"):
        return _error("negative", "must not be negative")
    if text.startswith("+"):
        return _error("invalid_decimal", "must be written without a sign")
    return _error("invalid_decimal", "must be a decimal number like 1234.56")


def _parse_decimal(value: object, *, maximum: Decimal) -> Decimal:
    """A non-negative decimal with at most two places and at most ``maximum``, in cents."""
    text = _decimal_text(value)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise _explain_bad_decimal(text)
    _, _, fraction = text.partition(".")
    if len(fraction) > 2:
        raise _error("too_many_decimals", "must have at most 2 decimal places")
    try:
        number = Decimal(text)
    except InvalidOperation:  # unreachable for text matching _PLAIN_DECIMAL; kept for safety
        raise _error("invalid_decimal", "must be a decimal number like 1234.56") from None
    if number > maximum:
        raise _error("too_large", f"must be at most {maximum}")
    return number.quantize(Decimal("0.01"))


def parse_money(value: object) -> Decimal:
    """Validate one money amount; raises ``PydanticCustomError`` with a code and a reason."""
    return _parse_decimal(value, maximum=MONEY_MAX)


def _parse_hours(value: object) -> Decimal:
    return _parse_decimal(value, maximum=HOURS_MAX)


def _format_cents(value: Decimal) -> str:
    return f"{value:.2f}"


def _parse_date(value: object) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _error("date_format", "must be a date written YYYY-MM-DD")
    text = clean_text(value)
    if not _ISO_DATE.fullmatch(text):
        raise _error("date_format", "must be a date written YYYY-MM-DD (e.g. 2026-01-31)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _error("invalid_date", "is not a real calendar date") from None


def _parse_email(value: object) -> str:
    text = _as_text(value, keep_spaces=False)
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise _error("invalid_email", "must be an email address like name@example.com")
    return text


def _parse_currency(value: object) -> str:
    text = _as_text(value, keep_spaces=False).upper()
    if not _CURRENCY.fullmatch(text):
        raise _error("invalid_currency", "must be a three-letter ISO 4217 code like USD")
    return text


def _parse_choice(value: object) -> object:
    # Case and padding are noise in a two-word vocabulary; the Literal check does the rest.
    return _as_text(value).lower() if isinstance(value, str) else value


def _parse_tax_id(value: object) -> str:
    text = _as_text(value, keep_spaces=False)
    if not _TAX_ID.fullmatch(text):
        raise _error(
            "invalid_tax_id",
            "must be 5 to 20 digits, optionally with dashes (leading zeros lost in Excel?)",
        )
    return text


def _aba_checksum_ok(digits: str) -> bool:
    """The ABA check: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).

    ``digits`` is nine ASCII digits (``_parse_routing`` checked). Written out rather than as
    a generator over weights: every row with bank details comes here (~5 us a row less).
    """
    # On the byte values themselves: each is its digit + 48, and the weights sum to 33, so
    # the sum is 33 * 48 = 1584 more than the digits' (4 more, mod 10).
    d = digits.encode("ascii")
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 4


def _parse_routing(value: object) -> str:
    text = _as_text(value, keep_spaces=False)
    if len(text) != 9 or not _DIGITS.fullmatch(text):
        raise _error("invalid_routing_number", "must be 9 digits (leading zeros lost in Excel?)")
    if not _aba_checksum_ok(text):
        raise _error("invalid_routing_number", "fails the ABA routing number checksum")
    return text


def _parse_account(value: object) -> str:
    text = _as_text(value, keep_spaces=False)
    if not (4 <= len(text) <= 17 and _DIGITS.fullmatch(text)):
        raise _error("invalid_account_number", "must be 4 to 17 digits")
    return text


Money: TypeAlias = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    PlainSerializer(_format_cents, return_type=str),
]
"""A non-negative amount with at most two decimal places, kept in cents, shown as ``"12.50"``."""

Hours: TypeAlias = Annotated[
    Decimal,
    BeforeValidator(_parse_hours),
    PlainSerializer(_format_cents, return_type=str),
]
"""Hours worked in a pay period: 0 to 744 with at most two decimal places."""

Currency: TypeAlias = Annotated[str, BeforeValidator(_parse_currency)]
"""An ISO 4217 style code: three letters, upper-cased on the way in."""

_parse_name = _text(100)
_parse_memo = _text(500)
_parse_external_id = _identifier(128)
_parse_reference = _identifier(64)

IsoDate: TypeAlias = Annotated[date, BeforeValidator(_parse_date)]
Name: TypeAlias = Annotated[str, BeforeValidator(_parse_name)]
Memo: TypeAlias = Annotated[str, BeforeValidator(_parse_memo)]
ExternalId: TypeAlias = Annotated[str, BeforeValidator(_parse_external_id)]
Reference: TypeAlias = Annotated[str, BeforeValidator(_parse_reference)]
Email: TypeAlias = Annotated[str, BeforeValidator(_parse_email)]
TaxId: TypeAlias = Annotated[SecretStr, BeforeValidator(_parse_tax_id)]
RoutingNumber: TypeAlias = Annotated[str, BeforeValidator(_parse_routing)]
AccountNumber: TypeAlias = Annotated[SecretStr, BeforeValidator(_parse_account)]
CompensationType: TypeAlias = Annotated[Literal["salary", "hourly"], BeforeValidator(_parse_choice)]


_COMPENSATION_TYPES = frozenset(get_args(get_args(CompensationType)[0]))


def _parse_compensation_type(value: object) -> object:
    """``CompensationType`` in full: its before-validator, then the ``Literal`` check."""
    choice = _parse_choice(value)
    if choice not in _COMPENSATION_TYPES:
        raise _error("literal_error", "is not one of the choices")
    return choice


def _parse_secret_tax_id(value: object) -> SecretStr:
    """``TaxId`` in full: its before-validator, then pydantic's wrapping in ``SecretStr``."""
    return SecretStr(_parse_tax_id(value))


def _parse_secret_account(value: object) -> SecretStr:
    """``AccountNumber`` in full: its before-validator, then the wrapping in ``SecretStr``."""
    return SecretStr(_parse_account(value))


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not clean_text(value))


def _without_blanks(data: Mapping[Any, Any]) -> dict[Any, Any]:
    """``data`` without absent values, so an empty cell means "not given"."""
    # An ASCII string with a non-space character is never blank (``clean_text`` only removes
    # non-ASCII characters and surrounding spaces): most cells, decided without a call.
    return {
        key: value
        for key, value in data.items()
        if (type(value) is str and value.isascii() and not value.isspace() and value)
        or not _is_blank(value)
    }


class RowModel(BaseModel):
    """Base of the row models: cleaning of blanks, strictness, and the identity contract."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        str_strip_whitespace=False,
        # Each model's validator is built on its first use, not at import: ``validate`` of an
        # onboarding file never builds the payroll model, and ``status`` builds none.
        defer_build=True,
    )

    identity_label: ClassVar[str] = "identity"
    """How a duplicate message names the identity, e.g. "external id"."""

    clean_fields: ClassVar[tuple[tuple[str, Callable[[Any], object], bool], ...]] = ()
    """Every field in model order as ``(name, parse, required)`` for :meth:`validate_clean`:
    ``parse`` is the function the field's annotation validates with, followed by what pydantic
    does after it (``SecretStr`` wrapping, the ``Literal`` check). Empty: no fast path."""

    @classmethod
    def validate_clean(cls, data: object) -> Self | None:
        """``model_validate(data)`` for a flat row that passes every check, or None.

        The same field parsers, blank rule and model checks as ``model_validate``, called
        directly rather than through pydantic's machinery (about half a row's validation
        time). Any row it does not accept (a nested or unknown key, a failing check, a model
        that is not plain) gives None, and only ``model_validate`` may then say why: this is a
        shortcut for valid rows, never a second source of errors.
        """
        fields = cls.clean_fields
        if not fields or type(data) is not dict or not _clean_names(cls).issuperset(data):
            return None
        values: dict[str, object] = {}
        given: set[str] = set()
        try:
            for name, parse, required in fields:
                value = data.get(name)
                # ``_without_blanks``'s rule: a blank value (or none) is "not given".
                if (
                    type(value) is str and value.isascii() and not value.isspace() and value
                ) or not _is_blank(value):
                    values[name] = parse(value)
                    given.add(name)
                elif required:
                    return None
                else:
                    values[name] = None
            model = _object_new(cls)
            _object_setattr(model, "__dict__", values)
            _object_setattr(model, "__pydantic_fields_set__", given)
            _object_setattr(model, "__pydantic_extra__", None)
            _object_setattr(model, "__pydantic_private__", None)
            for check in _after_checks(cls):
                if check(model) is not model:
                    return None
        except Exception:  # any failure: model_validate decides, and explains
            return None
        return model

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: object) -> object:
        # One before-validator, so the order (reshape, then drop blanks) is explicit.
        return _without_blanks(cls._reshape(data)) if isinstance(data, Mapping) else data

    @classmethod
    def _reshape(cls, data: Mapping[Any, Any]) -> Mapping[Any, Any]:
        """Hook: turn another accepted input shape into the flat one (identity by default)."""
        return data

    @property
    @abstractmethod
    def identity(self) -> str:
        """The key two rows of one file must not share."""

    @property
    @abstractmethod
    def identity_field(self) -> str:
        """The column a duplicate rejection points at."""


_object_new = object.__new__
_object_setattr = object.__setattr__
_CLEAN_NAMES: dict[type[RowModel], frozenset[str]] = {}
_AFTER_CHECKS: dict[type[RowModel], tuple[Callable[[Any], object], ...]] = {}


def _clean_names(cls: type[RowModel]) -> frozenset[str]:
    """The keys ``validate_clean`` takes: the names of ``clean_fields``."""
    names = _CLEAN_NAMES.get(cls)
    if names is None:
        names = _CLEAN_NAMES[cls] = frozenset(name for name, _, _ in cls.clean_fields)
    return names


def _after_checks(cls: type[RowModel]) -> tuple[Callable[[Any], object], ...]:
    """The model's after-validators, in pydantic's order; raises if it has validators of any
    other kind than these and ``_prepare`` (then ``validate_clean`` cannot stand in for it)."""
    checks = _AFTER_CHECKS.get(cls)
    if checks is None:
        decorators = cls.__pydantic_decorators__
        model_validators = list(decorators.model_validators.values())
        plain = (
            not decorators.validators
            and not decorators.field_validators
            and not decorators.root_validators
            and all(
                v.info.mode == "after" or v.cls_var_name == "_prepare" for v in model_validators
            )
        )
        if not plain:
            raise TypeError(f"{cls.__name__} has validators validate_clean does not run")
        checks = tuple(v.func for v in model_validators if v.info.mode == "after")
        _AFTER_CHECKS[cls] = checks
    return checks


def _flatten(data: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """An API-shaped JSONL object turned flat; a key given both ways is an error.

    A row without any nested key (every CSV row) is returned as it is, not copied: the
    caller (``_without_blanks``) builds a new dict from it anyway.
    """
    if not any(outer in data for outer in NESTED_FIELDS):
        return data
    flat = {key: value for key, value in data.items() if key not in NESTED_FIELDS}
    for outer, mapping in NESTED_FIELDS.items():
        inner = data.get(outer)
        if _is_blank(inner):
            continue
        if not isinstance(inner, Mapping):
            raise PydanticCustomError("invalid_type", "{field} must be an object", {"field": outer})
        for key, value in inner.items():
            name = mapping.get(key) if isinstance(key, str) else None
            if name is None:
                raise PydanticCustomError(
                    "unknown_field",
                    "unknown field {field}",
                    {"field": f"{outer}.{key}"},
                )
            if name in flat and not _is_blank(flat[name]):
                raise PydanticCustomError(
                    "conflict", "{field} is given both flat and nested", {"field": name}
                )
            flat[name] = value
    return flat


class OnboardingRow(RowModel):
    """One employee to onboard: the flat columns of ``columns.ONBOARDING_COLUMNS``.

    JSONL may instead nest ``compensation {type, amount, currency}`` and ``bank_account
    {routing_number, account_number}`` as in the API body. Bank details come both or neither.
    """

    identity_label: ClassVar[str] = "external id"
    clean_fields: ClassVar[tuple[tuple[str, Callable[[Any], object], bool], ...]] = (
        ("external_id", _parse_external_id, True),
        ("first_name", _parse_name, True),
        ("last_name", _parse_name, True),
        ("email", _parse_email, True),
        ("hire_date", _parse_date, True),
        ("pay_group_id", _parse_reference, True),
        ("employment_type", _parse_reference, True),
        ("compensation_type", _parse_compensation_type, True),
        ("compensation_amount", parse_money, True),
        ("currency", _parse_currency, True),
        ("tax_id", _parse_secret_tax_id, False),
        ("bank_routing_number", _parse_routing, False),
        ("bank_account_number", _parse_secret_account, False),
    )

    external_id: ExternalId
    first_name: Name = Field(repr=False)
    last_name: Name = Field(repr=False)
    email: Email = Field(repr=False)
    hire_date: IsoDate
    pay_group_id: Reference
    employment_type: Reference
    compensation_type: CompensationType
    compensation_amount: Money = Field(repr=False)
    currency: Currency
    tax_id: TaxId | None = Field(default=None, repr=False)
    bank_routing_number: RoutingNumber | None = Field(default=None, repr=False)
    bank_account_number: AccountNumber | None = Field(default=None, repr=False)

    @classmethod
    def _reshape(cls, data: Mapping[Any, Any]) -> Mapping[Any, Any]:
        return _flatten(data)

    @classmethod
    def validate_clean(cls, data: object) -> Self | None:
        """``RowModel.validate_clean``, first trying :func:`_plain_onboarding_row`."""
        if cls is OnboardingRow:
            plain = _plain_onboarding_row(data)
            if plain is not None:
                return cast("Self", plain)
        return super().validate_clean(data)

    @model_validator(mode="after")
    def _bank_details_paired(self) -> OnboardingRow:
        if (self.bank_routing_number is None) != (self.bank_account_number is None):
            absent = "bank_account_number" if self.bank_account_number is None else None
            raise PydanticCustomError(
                "bank_incomplete",
                "bank_routing_number and bank_account_number come together: give both or neither",
                {"field": absent or "bank_routing_number"},
            )
        return self

    @property
    def identity(self) -> str:
        """The customer's own key for the employee (``external_id``)."""
        return self.external_id

    @property
    def identity_field(self) -> str:
        """Always ``external_id``."""
        return "external_id"

    def to_request_body(self) -> dict[str, object]:
        """The ``POST /employees`` JSON body of the contract, money as a decimal string."""
        body: dict[str, object] = {
            "external_id": self.external_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "hire_date": self.hire_date.isoformat(),
            "pay_group_id": self.pay_group_id,
            "employment_type": self.employment_type,
            "compensation": {
                "type": self.compensation_type,
                "amount": _format_cents(self.compensation_amount),
                "currency": self.currency,
            },
        }
        if self.tax_id is not None:
            body["tax_id"] = self.tax_id.get_secret_value()
        if self.bank_routing_number is not None and self.bank_account_number is not None:
            body["bank_account"] = {
                "routing_number": self.bank_routing_number,
                "account_number": self.bank_account_number.get_secret_value(),
            }
        return body

    def request_body_json(self) -> str:
        """``core.keys.canonical_json(self.to_request_body())``, written out directly.

        Keys sorted, no whitespace, strings escaped by the ``json`` encoder's own function:
        the same text (``tests/input/test_clean_rows.py`` holds it to that), at a quarter of
        the cost of encoding the dict. Keep the two methods in step.
        """
        quote = _json_string
        bank = ""
        if self.bank_routing_number is not None and self.bank_account_number is not None:
            account = quote(self.bank_account_number.get_secret_value())
            bank = (
                f'"bank_account":{{"account_number":{account},'
                f'"routing_number":{quote(self.bank_routing_number)}}},'
            )
        tax = "" if self.tax_id is None else f',"tax_id":{quote(self.tax_id.get_secret_value())}'
        return (
            f'{{{bank}"compensation":{{"amount":{quote(_format_cents(self.compensation_amount))},'
            f'"currency":{quote(self.currency)},"type":{quote(self.compensation_type)}}},'
            f'"email":{quote(self.email)},"employment_type":{quote(self.employment_type)},'
            f'"external_id":{quote(self.external_id)},"first_name":{quote(self.first_name)},'
            f'"hire_date":{quote(self.hire_date.isoformat())},"last_name":{quote(self.last_name)},'
            f'"pay_group_id":{quote(self.pay_group_id)}{tax}}}'
        )


_ONBOARDING_ORDER = tuple(name for name, _, _ in OnboardingRow.clean_fields)
_onboarding_cells = itemgetter(*_ONBOARDING_ORDER)
_ALL_ONBOARDING_FIELDS = frozenset(_ONBOARDING_ORDER)
_CENT = Decimal("0.01")


def _plain_onboarding_row(data: object) -> OnboardingRow | None:
    """``OnboardingRow.model_validate(data)`` for the plainest valid rows, or None.

    Takes only a dict with every column, every value a ``str``, all of them printable ASCII:
    a CSV row of a tidy file. For such text ``_as_text`` is ``str.strip`` (no zero-width or
    no-break spaces, no control characters: checked once for the whole row), so each field's
    check is written out below as the very condition its parser tests, without the calls.
    Anything else, including any row one of these checks refuses, gives None and goes the
    long way. ``tests/input/test_clean_rows.py`` holds it to ``model_validate``.
    """
    if type(data) is not dict or data.keys() != _ALL_ONBOARDING_FIELDS:
        return None
    cells = _onboarding_cells(data)  # a tuple, in field order
    try:
        joined = "".join(cells)  # TypeError unless every value is a str (or a subclass)
    except TypeError:
        return None
    if not (joined.isascii() and joined.isprintable()) or set(map(type, cells)) != _STR_ONLY:
        return None
    (
        external_id,
        first_name,
        last_name,
        email,
        hire_text,
        pay_group_id,
        employment_type,
        compensation_type,
        amount_text,
        currency,
        tax_id,
        routing,
        account,
    ) = map(str.strip, cells)
    if not (
        external_id
        and len(external_id) <= 128
        and 0 < len(first_name) <= 100
        and 0 < len(last_name) <= 100
        and len(email) <= 254
        and _EMAIL.fullmatch(email)
        and _ISO_DATE.fullmatch(hire_text)
        and pay_group_id
        and len(pay_group_id) <= 64
        and employment_type
        and len(employment_type) <= 64
        and _PLAIN_DECIMAL.fullmatch(amount_text)
        and len(currency) == 3
        and currency.isalpha()
    ):
        return None
    # Identifiers Excel mangled into numbers start with a digit: only those need the patterns.
    for identifier in (external_id, pay_group_id, employment_type):
        if identifier[0].isdigit() and (
            _EXCEL_SCIENTIFIC.fullmatch(identifier) or _EXCEL_DECIMAL.fullmatch(identifier)
        ):
            return None
    compensation_type = compensation_type.lower()
    if compensation_type not in _COMPENSATION_TYPES:
        return None
    fraction = amount_text.partition(".")[2]
    if len(fraction) > 2:
        return None
    amount = Decimal(amount_text)
    if amount > MONEY_MAX:
        return None
    try:
        hire_date = date.fromisoformat(hire_text)
    except ValueError:
        return None
    given = set(_REQUIRED_ONBOARDING)
    if tax_id:
        if not _TAX_ID.fullmatch(tax_id):
            return None
        given.add("tax_id")
    if routing or account:
        if not (
            len(routing) == 9
            and routing.isdigit()
            and _aba_checksum_ok(routing)
            and 4 <= len(account) <= 17
            and account.isdigit()
        ):
            return None  # bad, or only one of the two (a bank_incomplete rejection)
        given.add("bank_routing_number")
        given.add("bank_account_number")
    model = _object_new(OnboardingRow)
    values = {
        "external_id": external_id,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "hire_date": hire_date,
        "pay_group_id": pay_group_id,
        "employment_type": employment_type,
        "compensation_type": compensation_type,
        "compensation_amount": amount.quantize(_CENT),
        "currency": currency.upper(),
        "tax_id": SecretStr(tax_id) if tax_id else None,
        "bank_routing_number": routing or None,
        "bank_account_number": SecretStr(account) if account else None,
    }
    _object_setattr(model, "__dict__", values)
    _object_setattr(model, "__pydantic_fields_set__", given)
    _object_setattr(model, "__pydantic_extra__", None)
    _object_setattr(model, "__pydantic_private__", None)
    return model


_STR_ONLY = {str}
_REQUIRED_ONBOARDING = frozenset(
    name for name, _, required in OnboardingRow.clean_fields if required
)


class PayrollRow(RowModel):
    """One employee's pay for the run: ``columns.PAYROLL_COLUMNS``.

    The employee is named by exactly one of ``employee_external_id`` (the customer's key, looked
    up on the server) or ``employee_id`` (FlexPay's id). Two rows for the same employee in one
    file are duplicates: the second would pay the employee twice in the same run.
    """

    identity_label: ClassVar[str] = "employee"
    clean_fields: ClassVar[tuple[tuple[str, Callable[[Any], object], bool], ...]] = (
        ("employee_external_id", _parse_external_id, False),
        ("employee_id", _parse_reference, False),
        ("hours", _parse_hours, False),
        ("gross_amount", parse_money, True),
        ("currency", _parse_currency, True),
        ("memo", _parse_memo, False),
    )

    employee_external_id: ExternalId | None = None
    employee_id: Reference | None = None
    hours: Hours | None = None
    gross_amount: Money
    currency: Currency
    memo: Memo | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _one_employee_reference(self) -> PayrollRow:
        given = (self.employee_external_id is not None) + (self.employee_id is not None)
        if given != 1:
            reason = "give only one of" if given else "give one of"
            raise PydanticCustomError(
                "employee_reference",
                f"{reason} employee_external_id or employee_id",
                {"field": "employee_id" if given else "employee_external_id"},
            )
        return self

    @property
    def identity(self) -> str:
        """``ext:<employee_external_id>`` or ``emp:<employee_id>``."""
        if self.employee_external_id is not None:
            return f"ext:{self.employee_external_id}"
        return f"emp:{self.employee_id}"

    @property
    def identity_field(self) -> str:
        """The reference column this row uses."""
        return "employee_external_id" if self.employee_external_id is not None else "employee_id"

    def to_request_body(self, employee_id: str) -> dict[str, object]:
        """The ``POST /payroll_runs/{id}/items`` body for the resolved FlexPay ``employee_id``."""
        body: dict[str, object] = {
            "employee_id": employee_id,
            "gross_amount": _format_cents(self.gross_amount),
            "currency": self.currency,
        }
        if self.hours is not None:
            body["hours"] = _format_cents(self.hours)
        if self.memo is not None:
            body["memo"] = self.memo
        return body
