"""``validate_clean``, the shortcut for valid rows, is ``model_validate`` exactly where it answers.

Every row the shortcut accepts must give the very model ``model_validate`` gives (same values,
same types, same fields set, same request body bytes): the body hash and the idempotency key
derive from it. Rows it does not accept go to ``model_validate`` (which then explains them), so
only acceptance needs proving. Generated rows mix valid cells with the edges of every check.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BeforeValidator, SecretStr, ValidationError

from benchmarks.data import onboarding_row
from flexpay_batch.core.keys import canonical_json, encode_body
from flexpay_batch.input import models
from flexpay_batch.input.columns import ONBOARDING_COLUMNS
from flexpay_batch.input.models import (
    OnboardingRow,
    PayrollRow,
    RowModel,
    _plain_onboarding_row,
)
from tests.input.rows import ONBOARDING_ROW, PAYROLL_ROW

#: Six times the profile's examples (300 in the suite, 3,000 with ``thorough``): an example
#: costs microseconds, and acceptance by the shortcut is the whole claim, so these look wider
#: than the suite's other property tests without costing the suite much.
EXAMPLES = 6 * settings.default.max_examples

#: Cells that pass or barely fail each check (lengths, Excel forms, dates, decimals, digits).
_EDGES: dict[str, list[object]] = {
    "external_id": ["E-1", "1001", "1.0", "1.00", "1.5", "1e+5", "1E+05", "1.5e+3", "1e5",
                    "x" * 128, "x" * 129, "0", "9" * 20, "a.0"],
    "first_name": ["Ada", "a" * 100, "a" * 101, "O'Brien", 'Q "x"', "=SUM(A1)", "Zoë", "李"],
    "last_name": ["Lovelace", "b" * 100, "b" * 101, "-x", "\\"],
    "email": ["ada@example.com", "a@b.co", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@-b.co",
              "a@b_.co", "x" * 64 + "@ex.com", "x" * 65 + "@ex.com",
              "a@" + "b" * 250 + ".com", "a@b.c0m", "A@B.CO"],
    "hire_date": ["2026-01-05", "2024-02-29", "2023-02-29", "2026-13-01", "2026-1-05",
                  "20260105", "2026-01-05T00:00", "0000-01-01", "9999-12-31", "2026-00-10"],
    "pay_group_id": ["pg_weekly", "p" * 64, "p" * 65, "12", "12.0", "3e+2"],
    "employment_type": ["full_time", "e" * 64, "e" * 65, "0.000"],
    "compensation_type": ["salary", "hourly", "SALARY", "Hourly", "wage", "salary.", "sal ary"],
    "compensation_amount": ["85000", "0", "0.5", "0.05", "0.005", "1.", ".5", "1.2.3",
                            "999999999.99", "999999999.995", "1000000000", "999999999.999",
                            "00012.30", "-1", "+1", "1,000", "1e3", "NaN", "inf", "$5",
                            "1_000", "\u0663"],
    "currency": ["USD", "usd", "UsD", "US", "USDX", "U5D", "ÜSD", "U D"],
    "tax_id": ["123-45-6789", "12345", "1234", "9" * 20, "9" * 21, "-1234", "1234-",
               "12-34", "12a45"],
    "bank_routing_number": ["011000015", "036282766", "011000016", "01100001", "0110000150",
                            "01100001x", "\u0660\u0661\u0661\u0660\u0660\u0660\u0660\u0661\u0665"],
    "bank_account_number": ["000123456789", "1234", "123", "1" * 17, "1" * 18, "12a4",
                            "\u0661\u0662\u0663\u0664"],
}  # fmt: skip

_PADDING = st.sampled_from(["", " ", "  ", "\u00a0", "\u200b", "\ufeff", "\t", "\n", "\x1f"])
_ODD_VALUES = st.sampled_from(
    [None, "", " ", "\u00a0", "\u200b", 0, 12345, True, 1.5, Decimal("10.50"), ["x"], {"a": 1}]
)


def _cell(name: str) -> st.SearchStrategy[object]:
    edge = st.sampled_from(_EDGES[name])
    padded = st.tuples(_PADDING, st.sampled_from(_EDGES[name]), _PADDING).map(
        lambda parts: f"{parts[0]}{parts[1]}{parts[2]}"
    )
    return st.one_of(edge, edge, padded, _ODD_VALUES, st.text(max_size=12))


@st.composite
def _onboarding_data(draw: st.DrawFn) -> dict[str, object]:
    data: dict[str, object] = dict(ONBOARDING_ROW)
    # Most examples vary a few cells of a valid row; some vary every cell.
    names = draw(st.sets(st.sampled_from(ONBOARDING_COLUMNS), max_size=13))
    for name in names:
        data[name] = draw(_cell(name))
    for name in draw(st.sets(st.sampled_from(ONBOARDING_COLUMNS), max_size=2)):
        del data[name]
    extra = draw(st.sampled_from([None, None, None, "taxid", "compensation", "bank_account"]))
    if extra is not None:
        data[extra] = draw(st.sampled_from(["", "x", {"amount": "1"}, None]))
    return data


@st.composite
def _payroll_data(draw: st.DrawFn) -> dict[str, object]:
    data: dict[str, object] = dict(PAYROLL_ROW)
    edges: dict[str, list[object]] = {
        "employee_external_id": _EDGES["external_id"],
        "employee_id": _EDGES["pay_group_id"] + ["emp_1"],
        "hours": ["40", "744", "744.01", "745", "0.5", "1.234", "-1", "abc"],
        "gross_amount": _EDGES["compensation_amount"],
        "currency": _EDGES["currency"],
        "memo": ["week 1", "m" * 500, "m" * 501, "tab\there"],
    }
    for name in draw(st.sets(st.sampled_from(sorted(edges)), max_size=6)):
        choice = st.one_of(st.sampled_from(edges[name]), _ODD_VALUES)
        data[name] = draw(
            st.tuples(_PADDING, choice, _PADDING).map(
                lambda p: f"{p[0]}{p[1]}{p[2]}" if isinstance(p[1], str) else p[1]
            )
        )
    for name in draw(st.sets(st.sampled_from(sorted(edges)), max_size=2)):
        data.pop(name, None)
    return data


def _full(model_cls: type[RowModel], data: dict[str, object]) -> RowModel | None:
    try:
        return model_cls.model_validate(data)
    except ValidationError:
        return None


def _assert_same(fast: RowModel, full: RowModel) -> None:
    """Two models alike in every way planning and outputs can see."""
    assert type(fast) is type(full)
    assert fast == full
    assert list(fast.__dict__) == list(full.__dict__)
    for name, expected in full.__dict__.items():
        got = fast.__dict__[name]
        assert type(got) is type(expected), name
        if isinstance(expected, SecretStr):
            assert isinstance(got, SecretStr)
            assert got.get_secret_value() == expected.get_secret_value(), name
        else:
            assert repr(got) == repr(expected), name
    assert fast.model_fields_set == full.model_fields_set
    assert fast.__pydantic_extra__ == full.__pydantic_extra__
    assert fast.__pydantic_private__ == full.__pydantic_private__
    assert repr(fast.model_dump()) == repr(full.model_dump())
    assert fast.identity == full.identity


def _assert_bodies_same(fast: OnboardingRow, full: OnboardingRow) -> None:
    assert encode_body(fast.to_request_body()) == encode_body(full.to_request_body())


@given(_onboarding_data())
@settings(max_examples=EXAMPLES)
def test_plain_onboarding_rows_are_model_validate(data: dict[str, object]) -> None:
    """The plain-row tier: where it answers, the answer is ``model_validate``'s."""
    fast = _plain_onboarding_row(data)
    if fast is not None:
        full = _full(OnboardingRow, data)
        assert isinstance(full, OnboardingRow), "accepted a row model_validate refuses"
        _assert_same(fast, full)
        _assert_bodies_same(fast, full)


@given(_onboarding_data())
@settings(max_examples=EXAMPLES)
def test_clean_onboarding_rows_are_model_validate(data: dict[str, object]) -> None:
    """Both tiers together (``validate_clean``): where they answer, ``model_validate``'s."""
    fast = OnboardingRow.validate_clean(data)
    generic = super(OnboardingRow, OnboardingRow).validate_clean(data)
    full = _full(OnboardingRow, data)
    for answer in (fast, generic):
        if answer is not None:
            assert isinstance(full, OnboardingRow), "accepted a row model_validate refuses"
            assert isinstance(answer, OnboardingRow)
            _assert_same(answer, full)
            _assert_bodies_same(answer, full)
    flat = data.keys() <= OnboardingRow.model_fields.keys()
    if full is not None and flat and all(type(v) is str or v is None for v in data.values()):
        # Valid rows of the flat columns, in text, always take the shortcut.
        assert generic is not None


@given(_payroll_data())
@settings(max_examples=EXAMPLES)
def test_clean_payroll_rows_are_model_validate(data: dict[str, object]) -> None:
    """The generic tier on payroll rows: where it answers, ``model_validate``'s."""
    fast = PayrollRow.validate_clean(data)
    full = _full(PayrollRow, data)
    if fast is not None:
        assert isinstance(full, PayrollRow), "accepted a row model_validate refuses"
        _assert_same(fast, full)
        assert fast.to_request_body("emp_1") == full.to_request_body("emp_1")


@pytest.mark.parametrize("i", range(0, 3000, 7))
def test_tidy_rows_take_the_plain_tier(i: int) -> None:
    """The rows of a tidy file (the benchmark's) are all answered by the plain tier."""
    data: dict[str, Any] = dict(zip(ONBOARDING_COLUMNS, onboarding_row(i), strict=True))
    fast = _plain_onboarding_row(data)
    assert fast is not None
    full = OnboardingRow.model_validate(data)
    _assert_same(fast, full)
    _assert_bodies_same(fast, full)


@pytest.mark.parametrize("model_cls", [OnboardingRow, PayrollRow])
def test_clean_fields_follow_the_model(model_cls: type[RowModel]) -> None:
    """``clean_fields`` lists every field in model order, required as the model says, every
    optional one defaulting to None; the model has no validators the shortcut would skip."""
    fields = model_cls.model_fields
    assert [name for name, _, _ in model_cls.clean_fields] == list(fields)
    for name, _, required in model_cls.clean_fields:
        assert fields[name].is_required() == required, name
        if not required:
            assert fields[name].default is None, name
    decorators = model_cls.__pydantic_decorators__
    assert not decorators.field_validators
    assert not decorators.validators
    modes = sorted((v.cls_var_name, v.info.mode) for v in decorators.model_validators.values())
    expected_after = (
        "_bank_details_paired" if model_cls is OnboardingRow else "_one_employee_reference"
    )
    assert modes == sorted([("_prepare", "before"), (expected_after, "after")])


def _before_validator(model_cls: type[RowModel], name: str) -> object:
    info = model_cls.model_fields[name]
    metadata = list(info.metadata)
    for arg in get_args(info.annotation):
        metadata.extend(getattr(arg, "__metadata__", ()))
    (found,) = [item.func for item in metadata if isinstance(item, BeforeValidator)]
    return found


#: ``clean_fields`` parsers that add what pydantic does after the before-validator.
_WRAPPED = {
    models._parse_secret_tax_id: models._parse_tax_id,
    models._parse_secret_account: models._parse_account,
    models._parse_compensation_type: models._parse_choice,
}


@pytest.mark.parametrize("model_cls", [OnboardingRow, PayrollRow])
def test_clean_fields_parse_like_their_annotations(model_cls: type[RowModel]) -> None:
    """Each parser in ``clean_fields`` is the one its field's annotation runs."""
    for name, parse, _ in model_cls.clean_fields:
        assert _WRAPPED.get(parse, parse) is _before_validator(model_cls, name), name


@given(_onboarding_data())
@settings(max_examples=EXAMPLES)
def test_onboarding_body_json_is_canonical_json(data: dict[str, object]) -> None:
    """``request_body_json`` is ``canonical_json(to_request_body())`` for every valid row
    (padding, Unicode, quotes and backslashes, optional fields given or not)."""
    model = _full(OnboardingRow, data)
    if isinstance(model, OnboardingRow):
        assert model.request_body_json() == canonical_json(model.to_request_body())


@pytest.mark.parametrize(
    "text", ['q"uote', "back\\slash", "sl/ash", "Zoë 名前 😀", "a\u2028b", "e\u0301", "a\u00a0b"]
)
def test_onboarding_body_json_escapes_like_json(text: str) -> None:
    """Strings that JSON escapes (or might) come out as ``canonical_json`` writes them."""
    row = dict(ONBOARDING_ROW, first_name=text, last_name=text)
    model = OnboardingRow.model_validate(row)
    assert model.request_body_json() == canonical_json(model.to_request_body())


@given(st.integers(min_value=0, max_value=999_999_999))
@settings(max_examples=EXAMPLES)
def test_routing_checksum_on_bytes_is_the_aba_check(number: int) -> None:
    """The checksum computed on byte values is the ABA check on the digits."""
    digits = f"{number:09d}"
    d = [int(ch) for ch in digits]
    expected = (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0
    assert models._aba_checksum_ok(digits) == expected
