"""The malformed-file corpus in ``tests/data``: every bad row named exactly, good rows pass.

Each case lists the exact (row, field, code) of every rejection and the identities of the rows
that must still come through. ``tests/data/README.md`` says what each file exercises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flexpay_batch.core.errors import InputFileError
from flexpay_batch.input.models import OnboardingRow, PayrollRow, RowModel
from flexpay_batch.input.readers import (
    FIELD_SIZE_LIMIT,
    MAX_LINE_CHARS,
    count_rows,
    iter_records,
    iter_references,
    reference_of,
)
from flexpay_batch.input.validation import Rejection, ValidRow, format_rejection, validate_rows

DATA = Path(__file__).parent.parent / "data"


@dataclass(frozen=True)
class Case:
    """One corpus file and what validating it must produce."""

    file: str
    rejected: tuple[tuple[int, str | None, str], ...]
    valid: tuple[str, ...]
    model: type[RowModel] = OnboardingRow
    encoding: str | None = None


CASES = [
    Case("bom_and_header_variants.csv", ((3, "hire_date", "date_format"),), ("E1", "E3")),
    Case("crlf.csv", ((3, "hire_date", "invalid_date"),), ("E1", "E3")),
    Case("cr_only.csv", ((3, "email", "invalid_email"),), ("E1", "E3")),
    Case("mixed_line_endings.csv", ((3, "compensation_amount", "negative"),), ("E1", "E3", "E4")),
    Case("semicolon.csv", ((3, "compensation_amount", "invalid_decimal"),), ("E1", "E3")),
    Case(
        "missing_required_column.csv", ((2, "currency", "missing"), (3, "currency", "missing")), ()
    ),
    Case("missing_optional_columns.csv", ((3, "hire_date", "date_format"),), ("E1",)),
    Case(
        "extra_columns.csv",
        ((3, "department", "unknown_field"), (4, "column 15", "unnamed_column")),
        ("E1", "E4"),
    ),
    Case(
        "short_and_long_rows.csv",
        ((3, None, "short_row"), (4, None, "long_row")),
        ("E1", "E4", "E5"),
    ),
    Case("header_only.csv", (), ()),
    Case("empty.jsonl", (), ()),
    Case("blank_lines.csv", ((6, "first_name", "missing"),), ("E1", "E3")),
    Case(
        "quoted_newlines.csv",
        (
            (3, "memo", "control_character"),
            (5, "memo", "control_character"),
            (6, "gross_amount", "invalid_decimal"),
        ),
        ("ext:E1", "ext:E3"),
        model=PayrollRow,
    ),
    Case(
        "duplicate_ids.csv",
        (
            (4, "external_id", "duplicate"),
            (5, "hire_date", "invalid_date"),
            (8, "external_id", "duplicate"),
        ),
        ("E1", "E2", "E3", "e1"),
    ),
    Case(
        "duplicate_payroll.csv",
        (
            (4, "employee_external_id", "duplicate"),
            (5, "employee_id", "duplicate"),
            (6, "employee_id", "employee_reference"),
            (7, "employee_external_id", "employee_reference"),
        ),
        ("ext:E1", "emp:emp_7", "ext:E3"),
        model=PayrollRow,
    ),
    Case(
        "invalid_dates.csv",
        (
            (3, "hire_date", "invalid_date"),
            (4, "hire_date", "date_format"),
            (5, "hire_date", "date_format"),
            (6, "hire_date", "date_format"),
            (7, "hire_date", "invalid_date"),
            (9, "hire_date", "date_format"),
        ),
        ("E1", "E7"),
    ),
    Case(
        "bad_amounts.csv",
        (
            (3, "gross_amount", "invalid_decimal"),
            (4, "gross_amount", "invalid_decimal"),
            (5, "gross_amount", "invalid_decimal"),
            (6, "gross_amount", "invalid_decimal"),
            (7, "gross_amount", "invalid_decimal"),
            (8, "gross_amount", "too_many_decimals"),
            (9, "gross_amount", "negative"),
            (10, "gross_amount", "invalid_decimal"),
            (11, "gross_amount", "missing"),
            (12, "gross_amount", "invalid_decimal"),
            (13, "gross_amount", "too_large"),
            (14, "hours", "too_many_decimals"),
            (15, "hours", "negative"),
            (18, "currency", "invalid_currency"),
        ),
        ("ext:E1", "ext:E15", "ext:E16"),
        model=PayrollRow,
    ),
    Case(
        "formula_cells.csv",
        ((4, "compensation_amount", "invalid_decimal"), (7, "first_name", "control_character")),
        ("E1", "E2", "=E4", "E5"),
    ),
    Case("nul_bytes.csv", ((3, "last_name", "nul_byte"),), ("E1", "E3")),
    Case("truncated.csv", ((4, None, "truncated"),), ("E1", "E2")),
    Case("unbalanced_quote.csv", ((4, None, "unclosed_quote"),), ("E1", "E2")),
    Case(
        "excel_ids.csv",
        (
            (3, "external_id", "excel_mangled"),
            (4, "external_id", "excel_mangled"),
            (5, "bank_routing_number", "invalid_routing_number"),
            (6, "bank_routing_number", "invalid_routing_number"),
            (7, "bank_account_number", "bank_incomplete"),
            (8, "tax_id", "invalid_tax_id"),
        ),
        ("E1", "0042"),
    ),
    Case("cp1252.csv", (), ("E1", "E2"), encoding="cp1252"),
    Case("utf16_bom.csv", (), ("E1",), encoding="utf-16"),
    Case("utf16_no_bom.csv", (), ("E1",), encoding="utf-16-le"),
    Case(
        "invalid_json.jsonl",
        (
            (3, None, "invalid_json"),
            (6, "compensation_amount", "invalid_decimal"),
            (7, "compensation_amount", "invalid_decimal"),
            (8, "compensation_amount", "too_many_decimals"),
            (9, "currency_note", "unknown_field"),
        ),
        ("J1", "J3", "J4", "J10"),
    ),
    Case(
        "duplicate_keys.jsonl",
        (
            (2, "email", "duplicate_key"),
            (3, "first_name", "duplicate_key"),
            (4, None, "duplicate_key"),
        ),
        ("J1", "J5"),
    ),
    Case(
        "top_level_array.jsonl",
        (
            (2, None, "not_object"),
            (3, None, "not_object"),
            (4, None, "not_object"),
            (5, None, "not_object"),
        ),
        ("J1", "J6"),
    ),
    Case("truncated.jsonl", ((3, None, "truncated"),), ("J1", "J2")),
    Case("crlf.jsonl", (), ("J1", "J3")),
]


def _validate(path: Path, case: Case) -> list[ValidRow[RowModel] | Rejection]:
    records = iter_records(path, encoding=case.encoding)
    return list(validate_rows(records, case.model, source_name=str(path)))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_corpus_file_rejects_exactly_the_bad_rows(case: Case) -> None:
    """Each bad row is rejected with its exact row, field and code; the good rows all pass."""
    results = _validate(DATA / case.file, case)
    rejected = [(r.row, r.field, r.code) for r in results if isinstance(r, Rejection)]
    valid = [r.model.identity for r in results if isinstance(r, ValidRow)]
    assert rejected == list(case.rejected)
    assert valid == list(case.valid)
    assert count_rows(DATA / case.file, encoding=case.encoding) == len(results)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
@pytest.mark.parametrize(
    "columns", [("external_id",), ("employee_reference", "external_id"), ("email", "last_name")]
)
def test_corpus_references_are_those_of_the_records(case: Case, columns: tuple[str, ...]) -> None:
    """``iter_references`` (the outputs' pass) gives each record's row, line and reference
    exactly as read from ``iter_records``, problem rows included."""
    path = DATA / case.file
    expected = [
        (r.row, r.line, reference_of(r.data, columns))
        for r in iter_records(path, encoding=case.encoding)
    ]
    assert list(iter_references(path, columns, encoding=case.encoding)) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_corpus_messages_name_file_row_and_field(case: Case) -> None:
    """Every rejection message names the file, the row and (when known) the field."""
    path = DATA / case.file
    for result in _validate(path, case):
        if isinstance(result, Rejection):
            message = format_rejection(result, str(path))
            assert message.startswith(f"{path} row {result.row}")
            if result.field is not None:
                assert f", field {result.field}: " in message
            assert result.reason
            assert result.reason in message


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_corpus_reasons_never_quote_cell_values(case: Case) -> None:
    """No rejection reason repeats a value from the rejected row (personal data stays out)."""
    path = DATA / case.file
    records = {r.row: r for r in iter_records(path, encoding=case.encoding)}
    for result in _validate(path, case):
        if isinstance(result, Rejection) and records[result.row].data is not None:
            data = records[result.row].data or {}
            for value in data.values():
                if isinstance(value, str) and len(value.strip()) >= 4:
                    assert value.strip() not in result.reason


@pytest.mark.parametrize(
    ("file", "fragment"),
    [
        ("empty.csv", "the file is empty"),
        ("blank_only.csv", "the file is empty"),
        ("missing_header.csv", "the first row is not a header"),
        ("duplicate_header.csv", "header columns 1 and 2 both name 'external_id'"),
        ("cp1252.csv", "line 3 is not valid UTF-8 (byte 0xEB at offset"),
        ("utf16_bom.csv", "the file is UTF-16"),
        ("utf16_no_bom.csv", "probably UTF-16 without a byte order mark"),
    ],
)
def test_unreadable_files_raise_input_file_error(file: str, fragment: str) -> None:
    """A file that cannot be read as a whole raises one InputFileError naming it and why."""
    path = DATA / file
    with pytest.raises(InputFileError) as caught:
        list(iter_records(path))
    assert str(caught.value).startswith(f"{path}: ")
    assert fragment in str(caught.value)


def test_cp1252_error_gives_the_exact_byte_offset() -> None:
    """The decoding error points at the offset of the first byte that is not UTF-8."""
    path = DATA / "cp1252.csv"
    offset = path.read_bytes().index(b"\xeb")
    with pytest.raises(InputFileError, match=rf"byte 0xEB at offset {offset}\)"):
        count_rows(path)


@pytest.mark.parametrize("separator", ["", "\n"], ids=["one_line", "many_lines"])
def test_field_over_one_mib_is_a_row_problem(tmp_path: Path, separator: str) -> None:
    """A quoted field over the 1 MiB limit rejects only its row; rows on both sides pass."""
    path = tmp_path / "big_field.csv"
    chunk = "x" * 63 + separator
    big = chunk * (FIELD_SIZE_LIMIT // len(chunk) + 1)
    header = "employee_external_id,memo,gross_amount,currency"
    path.write_text(f'{header}\nE1,,1.00,USD\nE2,"{big}",1.00,USD\nE3,,1.00,USD\n')
    results = list(validate_rows(iter_records(path), PayrollRow, source_name=str(path)))
    assert [(r.row, r.line, r.code) for r in results if isinstance(r, Rejection)] == [
        (3, 3, "field_too_large")
    ]
    assert [r.model.identity for r in results if isinstance(r, ValidRow)] == ["ext:E1", "ext:E3"]
    after = 4 + big.count("\n")
    assert [r.line for r in results if isinstance(r, ValidRow)] == [2, after]


def test_line_over_the_line_limit_is_skipped_as_a_row_problem(tmp_path: Path) -> None:
    """A single physical line longer than the limit is dropped unread; later rows still pass."""
    path = tmp_path / "long_line.csv"
    with path.open("w") as out:
        out.write("employee_external_id,memo,gross_amount,currency\nE1,,1.00,USD\nE2,")
        out.write("y" * (MAX_LINE_CHARS + 10))
        out.write(",1.00,USD\nE3,,1.00,USD\n")
    results = list(validate_rows(iter_records(path), PayrollRow, source_name=str(path)))
    assert [(r.row, r.line, r.code) for r in results if isinstance(r, Rejection)] == [
        (3, 3, "line_too_long")
    ]
    assert [r.model.identity for r in results if isinstance(r, ValidRow)] == ["ext:E1", "ext:E3"]
