"""Streaming readers: numbering, encodings, line endings, delimiters, limits and JSONL."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexpay_batch.core.errors import InputFileError
from flexpay_batch.input import readers
from flexpay_batch.input.readers import (
    InputReferences,
    SourceRecord,
    count_rows,
    count_rows_keeping_references,
    detect_format,
    iter_records,
    iter_references,
    normalise_column,
    reference_of,
)
from tests.harness import peak_allocation

_NEWLINE = re.compile(r"\r\n|\r|\n")


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _positions(records: list[SourceRecord]) -> list[tuple[int, int]]:
    return [(r.row, r.line) for r in records]


def test_rows_follow_the_spreadsheet_and_lines_the_file(tmp_path: Path) -> None:
    """Quoted newlines keep one row per record; blank lines count as rows but yield nothing."""
    path = _write(
        tmp_path,
        "f.csv",
        'external_id,memo\nA,"two\nlines"\n\nB,x\r\nC,"x\r\ny\rz"\nD,\n',
    )
    records = list(iter_records(path))
    assert _positions(records) == [(2, 2), (4, 5), (5, 6), (6, 9)]
    assert records[0].data == {"external_id": "A", "memo": "two\nlines"}
    assert records[2].data == {"external_id": "C", "memo": "x\r\ny\rz"}


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_all_read_the_same(tmp_path: Path, newline: str) -> None:
    """LF, CRLF and CR files give the same records at the same positions."""
    path = _write(tmp_path, "f.csv", newline.join(["external_id,memo", "A,1", "B,2", ""]))
    records = list(iter_records(path))
    assert [r.data for r in records] == [
        {"external_id": "A", "memo": "1"},
        {"external_id": "B", "memo": "2"},
    ]
    assert _positions(records) == [(2, 2), (3, 3)]


def test_crlf_split_across_read_chunks_is_one_line_end(tmp_path: Path) -> None:
    """A CRLF whose CR ends one 64 KiB chunk and LF starts the next counts as one line end."""
    header = "external_id,memo\r\n"
    filler = "A," + "m" * (65536 - len(header) - 3) + "\r\n"
    assert len(header) + len(filler) == 65536 + 1
    path = _write(tmp_path, "f.csv", header + filler + "B,x\r\n")
    assert _positions(list(iter_records(path))) == [(2, 2), (3, 3)]


def test_multibyte_character_split_across_chunks_decodes(tmp_path: Path) -> None:
    """A UTF-8 character cut by the chunk boundary is decoded whole."""
    header = "external_id,memo\n"
    prefix = "A," + "m" * (65536 - len(header) - 3)
    path = _write(tmp_path, "f.csv", header + prefix + "é\nB,x\n")
    records = list(iter_records(path))
    assert records[0].data == {"external_id": "A", "memo": "m" * (len(prefix) - 2) + "é"}


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    """The BOM is dropped, so the first column is still recognised."""
    path = _write(tmp_path, "f.csv", "\ufeffexternal_id,memo\nA,1\n")
    assert next(iter_records(path)).data == {"external_id": "A", "memo": "1"}


@pytest.mark.parametrize(
    ("cell", "column"),
    [
        ("External ID", "external_id"),
        (" FIRST\u00a0NAME ", "first_name"),
        ("e\u200bmail", "email"),
        ("E-Mail", "email"),
        ("Email Address", "email"),
        ("Routing Number", "bank_routing_number"),
        ("hire.date", "hire_date"),
        ("\ufeffcurrency", "currency"),
    ],
)
def test_header_cells_are_normalised(cell: str, column: str) -> None:
    """Case, padding, NBSP, zero-width characters, separators and aliases all normalise."""
    assert normalise_column(cell) == column


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_delimiter_is_sniffed_from_the_header(tmp_path: Path, delimiter: str) -> None:
    """Semicolon and tab files read like comma files; the other delimiters stay in the cells."""
    others = "x" + "".join(d for d in ",;\t" if d != delimiter)
    text = f"external_id{delimiter}memo\nA{delimiter}{others}\n"
    path = _write(tmp_path, "f.csv", text)
    assert next(iter_records(path)).data == {"external_id": "A", "memo": others}


def test_header_only_gives_no_rows(tmp_path: Path) -> None:
    """A header with no rows is "no rows": nothing yielded, count 0, no error."""
    path = _write(tmp_path, "f.csv", "external_id,memo\r\n\r\n")
    assert list(iter_records(path)) == []
    assert count_rows(path) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "the file is empty"),
        (b"A,B\nC,D\n", "the first row is not a header"),
        (b"external_id,External ID\n", "header columns 1 and 2 both name 'external_id'"),
        (b'"external_id,memo\n', "the header row cannot be read"),
        (b"\xff\xfee\x00x\x00", "the file is UTF-16"),
        (b"\xff\xfe\x00\x00e\x00\x00\x00", "the file is UTF-32"),
    ],
)
def test_whole_file_failures(tmp_path: Path, content: bytes, fragment: str) -> None:
    """Files that cannot be read at all raise InputFileError naming the file and the cause."""
    path = _write(tmp_path, "f.csv", content)
    with pytest.raises(InputFileError, match=re.escape(fragment)) as caught:
        list(iter_records(path))
    assert str(caught.value).startswith(f"{path}: ")


def test_decode_error_names_line_and_byte_offset(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 stop the read with their line and exact byte offset."""
    content = b"external_id,memo\nA,ok\nB,caf\xe9\n"
    path = _write(tmp_path, "f.csv", content)
    with pytest.raises(InputFileError) as caught:
        list(iter_records(path))
    offset = content.index(b"\xe9")
    assert f"line 3 is not valid UTF-8 (byte 0xE9 at offset {offset})" in str(caught.value)
    assert "--encoding" in str(caught.value)


def test_decode_error_offset_is_exact_past_the_first_chunk(tmp_path: Path) -> None:
    """The offset stays exact for a bad byte far into the file."""
    content = b"external_id,memo\n" + b"A,x\n" * 40000 + b"B,\x81\n"
    path = _write(tmp_path, "f.csv", content)
    offset = content.index(b"\x81")
    with pytest.raises(InputFileError, match=rf"line 40002 .* at offset {offset}\)"):
        count_rows(path)


def test_explicit_encoding_reads_cp1252_and_utf16(tmp_path: Path) -> None:
    """``encoding=`` reads files the default refuses."""
    text = "external_id,memo\nA,Zoë\n"
    for codec in ("cp1252", "utf-16", "latin-1"):
        path = _write(tmp_path, f"{codec}.csv", text.encode(codec))
        assert next(iter_records(path, encoding=codec)).data == {"external_id": "A", "memo": "Zoë"}


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        ("missing.csv", {}, "no such file"),
        ("f.xlsx", {}, "cannot tell the file format"),
        ("f.csv", {"encoding": "klingon"}, "unknown encoding"),
        ("f.csv", {"encoding": "base64"}, "unknown encoding"),
        ("f.csv", {"format": "xml"}, "cannot tell the file format"),
    ],
)
def test_usage_problems_raise_input_file_error(
    tmp_path: Path, name: str, kwargs: dict[str, str], fragment: str
) -> None:
    """Missing files, unknown formats and unknown encodings are InputFileErrors."""
    if name != "missing.csv":
        _write(tmp_path, name, "external_id\nA\n")
    with pytest.raises(InputFileError, match=fragment):
        list(iter_records(tmp_path / name, **kwargs))


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory given as the input file gets a clear error."""
    with pytest.raises(InputFileError, match="is a directory"):
        list(iter_records(tmp_path / "", format="csv"))


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    """``format=`` reads a file whatever its name."""
    path = _write(tmp_path, "data.txt", '{"external_id": "A"}\n')
    assert next(iter_records(path, format="jsonl")).data == {"external_id": "A"}
    assert detect_format("x.NDJSON") == "jsonl"
    assert detect_format("x.tsv") == "csv"


def test_jsonl_numbers_are_decimal_and_constants_strings(tmp_path: Path) -> None:
    """JSON fractions arrive as Decimal (never float); NaN/Infinity as their names."""
    path = _write(tmp_path, "f.jsonl", '{"a": 1.10, "b": 2, "c": NaN, "d": -Infinity}\n')
    assert next(iter_records(path)).data == {
        "a": Decimal("1.10"),
        "b": 2,
        "c": "NaN",
        "d": "-Infinity",
    }


def test_jsonl_keys_normalise_and_collide(tmp_path: Path) -> None:
    """JSONL keys normalise like headers; two keys naming one field are a row problem."""
    path = _write(tmp_path, "f.jsonl", '{"External ID": "A"}\n{"email": "x", "E-Mail": "y"}\n')
    first, second = iter_records(path)
    assert first.data == {"external_id": "A"}
    assert second.problem is not None
    assert (second.problem.field, second.problem.code) == ("email", "duplicate_key")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("[1, 2]", "not_object"),
        ('"text"', "not_object"),
        ("{'single': 'quotes'}", "invalid_json"),
        ("{" * 100000 + "}" * 100000, "invalid_json"),
        ('{"n": ' + "9" * 5000 + "}", "invalid_json"),
    ],
)
def test_jsonl_bad_lines_are_row_problems(tmp_path: Path, line: str, code: str) -> None:
    """Bad JSONL lines are row problems with their line number; later lines still read."""
    path = _write(tmp_path, "f.jsonl", f'{{"a": 1}}\n{line}\n{{"a": 3}}\n')
    records = list(iter_records(path))
    assert [(r.row, r.problem.code if r.problem else None) for r in records] == [
        (1, None),
        (2, code),
        (3, None),
    ]


def test_jsonl_last_line_without_newline_is_fine_when_complete(tmp_path: Path) -> None:
    """A complete last line without a newline is a record, not a truncation."""
    path = _write(tmp_path, "f.jsonl", '{"a": 1}\n\n{"a": 2}')
    assert [r.data for r in iter_records(path)] == [{"a": 1}, {"a": 2}]


def test_nul_byte_is_a_row_problem_naming_the_column(tmp_path: Path) -> None:
    """A NUL byte in a cell rejects that row only, naming the column."""
    path = _write(tmp_path, "f.csv", "external_id,memo\nA,x\x00y\nB,z\n")
    bad, good = iter_records(path)
    assert bad.problem is not None
    assert (bad.problem.field, bad.problem.code) == ("memo", "nul_byte")
    assert good.data == {"external_id": "B", "memo": "z"}


def test_bad_quoting_is_a_row_problem(tmp_path: Path) -> None:
    """Text after a closing quote is a row problem and the next row still reads."""
    path = _write(tmp_path, "f.csv", 'external_id,memo\nA,"x"y\nB,z\n')
    bad, good = iter_records(path)
    assert bad.problem is not None
    assert bad.problem.code == "bad_quoting"
    assert (good.row, good.data) == (3, {"external_id": "B", "memo": "z"})


def test_reading_uses_bounded_memory(tmp_path: Path) -> None:
    """Streaming a 3.7 MB file keeps Python allocations under 1 MB at peak (about 0.4 MB today,
    whatever the file's size: a reader that held the file would need four times the bound)."""
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("external_id,memo\n")
        for n in range(12_000):
            out.write(f"E{n},{'m' * 300}\n")
    rows, peak = peak_allocation(lambda: count_rows(path))
    assert rows == 12_000
    assert peak < 1_000_000


_CELL = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), _CELL, _CELL)))
def test_csv_written_by_csv_writer_reads_back_identically(
    tmp_path: Path, rows: list[tuple[str, str, str]]
) -> None:
    """Whatever csv.writer writes (newlines, quotes, delimiters) reads back with exact positions."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["external_id", "first_name", "memo"])
    expected_lines = []
    for row in rows:
        expected_lines.append(len(_NEWLINE.findall(buffer.getvalue())) + 1)
        writer.writerow(row)
    path = tmp_path / "roundtrip.csv"
    path.write_text(buffer.getvalue(), newline="")
    records = list(iter_records(path))
    assert [r.data for r in records] == [
        {"external_id": a, "first_name": b, "memo": c} for a, b, c in rows
    ]
    assert [r.row for r in records] == list(range(2, len(rows) + 2))
    assert [r.line for r in records] == expected_lines


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELL, min_size=0, max_size=5), max_size=12),
    header=st.sampled_from(
        [
            ["external_id", "first_name", "memo"],
            ["first_name", "", "external_id"],
            ["memo", "employee_reference", "external_id", "email"],
        ]
    ),
)
def test_references_are_those_of_the_records(
    tmp_path: Path, rows: list[list[str]], header: list[str]
) -> None:
    """Whatever the rows (short, long, blank, quoted, unnamed cells), ``iter_references`` gives
    each record's row, line and reference as ``iter_records`` and ``reference_of`` do."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "references.csv"
    path.write_text(buffer.getvalue(), newline="")
    columns = ("employee_reference", "external_id")
    expected = [(r.row, r.line, reference_of(r.data, columns)) for r in iter_records(path)]
    assert list(iter_references(path, columns)) == expected


def test_count_keeping_references_counts_and_keeps_what_iter_references_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass gives count_rows' count and iter_references' triples, across blocks; a file of
    more than MAX_KEPT_REFERENCES records keeps none (its outputs read the file again)."""
    monkeypatch.setattr(readers, "_BLOCK_REFERENCES", 3)
    body = "".join(f"E{n},Ann{n}\n" if n % 4 else "\n" for n in range(11))
    path = _write(tmp_path, "people.csv", "external_id,first_name\n" + body + '" E99 ",x')
    columns = ("external_id",)
    count, kept = count_rows_keeping_references(path, columns)
    assert count == count_rows(path) == 9
    assert kept is not None
    assert len(kept) == count
    assert list(kept) == list(iter_references(path, columns))
    assert list(kept)[-1] == (13, 13, "E99")
    monkeypatch.setattr(readers, "MAX_KEPT_REFERENCES", 8)
    assert count_rows_keeping_references(path, columns) == (9, None)


def test_kept_references_refuse_a_nul_and_jsonl_keeps_none_then(tmp_path: Path) -> None:
    """A reference holding a NUL cannot be kept NUL-separated: a JSONL file with one keeps
    none, and its count is still right."""
    kept = InputReferences()
    assert kept.append(2, 2, "E1")
    assert not kept.append(3, 3, "E\x002")
    assert list(kept) == [(2, 2, "E1")]
    path = _write(tmp_path, "people.jsonl", '{"external_id": "E1"}\n{"external_id": "E\\u00002"}\n')
    assert count_rows_keeping_references(path, ("external_id",)) == (2, None)
