"""Owner-only output files, formula escaping, masking and the CSV/JSON writers."""

from __future__ import annotations

import csv
import logging
import os
import re
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.files import (
    RejectLine,
    RejectsWriter,
    ResultLine,
    ResultsWriter,
    ensure_private_dir,
    escape_formula,
    mask_last4,
    open_private,
    write_private_atomic,
    write_report_json,
)
from flexpay_batch.core.states import RowStatus

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run the test with umask 0, so only our own mode arguments can keep files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- directories ----------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_ensure_private_dir_creates_nested_dirs_0700(tmp_path: Path) -> None:
    """Every directory it creates, parents included, is 0700 even under umask 0."""
    target = tmp_path / "a" / "b" / "run"
    assert ensure_private_dir(target) == target
    for directory in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode_of(directory) == 0o700


def test_ensure_private_dir_restores_owner_bits_under_strict_umask(tmp_path: Path) -> None:
    """A umask that strips the owner's bits still yields a usable 0700 directory."""
    old = os.umask(0o777)
    try:
        target = ensure_private_dir(tmp_path / "run")
    finally:
        os.umask(old)
    assert mode_of(target) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o720])
def test_ensure_private_dir_refuses_dir_others_can_write(tmp_path: Path, mode: int) -> None:
    """An existing directory group or others can write to is refused with a ConfigError."""
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(mode)
    with pytest.raises(ConfigError, match="writable by group or others"):
        ensure_private_dir(target)


def test_ensure_private_dir_accepts_readable_dir_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An existing 0755 directory is used as is, with a warning that others can list it."""
    target = tmp_path / "listed"
    target.mkdir()
    target.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="flexpay_batch.core.files"):
        assert ensure_private_dir(target) == target
    assert mode_of(target) == 0o755
    assert "can be listed by other users" in caplog.text


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    """A regular file where the run directory should be is a ConfigError."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        ensure_private_dir(target)


# --- files ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.parametrize("mode", ["w", "x", "a"])
def test_open_private_creates_0600_file(tmp_path: Path, mode: str) -> None:
    """A new file is 0600 under umask 0 in every open mode."""
    target = tmp_path / "out.csv"
    with open_private(target, mode) as handle:
        handle.write("a\nb\r\n")
    assert mode_of(target) == 0o600
    assert target.read_bytes() == b"a\nb\r\n"


def test_open_private_exclusive_refuses_existing(tmp_path: Path) -> None:
    """Mode "x" refuses a file that already exists."""
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(FileExistsError):
        open_private(target, "x")


def test_open_private_refuses_symlink(tmp_path: Path) -> None:
    """A symlink planted at the output path is refused and its target left untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "report.csv"
    link.symlink_to(victim)
    with pytest.raises(OSError):  # noqa: PT011  # ELOOP has no subclass of its own
        open_private(link)
    assert victim.read_text() == "precious"


def test_open_private_tightens_existing_loose_file(tmp_path: Path) -> None:
    """A pre-existing 0644 file is narrowed to 0600 before it is written."""
    target = tmp_path / "results.csv"
    target.write_text("old")
    target.chmod(0o644)
    with open_private(target) as handle:
        handle.write("new")
    assert mode_of(target) == 0o600
    assert target.read_text() == "new"


def test_open_private_appends(tmp_path: Path) -> None:
    """Mode "a" keeps what was there and adds to it."""
    target = tmp_path / "log"
    with open_private(target) as handle:
        handle.write("one\n")
    with open_private(target, "a") as handle:
        handle.write("two\n")
    assert target.read_text() == "one\ntwo\n"


def test_open_private_rejects_unknown_mode(tmp_path: Path) -> None:
    """Only the three writing modes are accepted."""
    with pytest.raises(ValueError, match="mode"):
        open_private(tmp_path / "x", "r+")


@pytest.mark.usefixtures("permissive_umask")
def test_write_private_atomic_replaces_loose_file(tmp_path: Path) -> None:
    """The atomic write leaves a 0600 file with the new text and no temporary file."""
    target = tmp_path / "report.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private_atomic(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_private_atomic_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the replace fails, the old content survives and the temporary file is removed."""
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_private_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


# --- formula escaping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+1", "'+1"),
        ("@x", "'@x"),
        ("-1+2", "'-1+2"),
        ("-", "'-"),
        ("-1e5", "'-1e5"),
        ("\tfoo", "'\tfoo"),
        ("\r=1", "'\r=1"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("-12.50", "-12.50"),
        ("-7", "-7"),
        ("-١٢", "'-١٢"),
        ("12.50", "12.50"),
        ("plain text", "plain text"),
        ("E10001", "E10001"),
        ("a=b", "a=b"),
        ("", ""),
        ("'=already", "'=already"),
    ],
)
def test_escape_formula_table(cell: str, expected: str) -> None:
    """Formula triggers get a leading quote; numbers and ordinary text are untouched."""
    assert escape_formula(cell) == expected


@given(st.text())
def test_escape_formula_is_idempotent(cell: str) -> None:
    """Escaping an escaped cell changes nothing."""
    once = escape_formula(cell)
    assert escape_formula(once) == once


@given(st.text().filter(lambda s: not s.startswith(TRIGGERS)))
def test_escape_formula_leaves_harmless_cells_alone(cell: str) -> None:
    """A cell that starts with none of the trigger characters is returned unchanged."""
    assert escape_formula(cell) == cell


@given(st.text())
def test_escape_formula_output_never_starts_a_formula(cell: str) -> None:
    """The result starts with a trigger only when it is a plain negative number."""
    escaped = escape_formula(cell)
    if escaped.startswith(TRIGGERS):
        assert escaped == cell
        assert re.fullmatch(r"-[0-9]+(\.[0-9]+)?", cell)


# --- masking --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("912006789", "****6789"),
        ("000123456789", "****6789"),
        (" 12345678 ", "****5678"),
        ("1234567", "****"),
        ("1234", "****"),
        ("", ""),
        ("   ", ""),
        (None, ""),
    ],
)
def test_mask_last4(value: str | None, expected: str) -> None:
    """Only the last four of a long enough value survive, behind a fixed-width mask."""
    assert mask_last4(value) == expected


# --- writers --------------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_results_writer_writes_escaped_owner_only_csv(tmp_path: Path) -> None:
    """results.csv has the header, one line per result, escaped cells, and mode 0600."""
    target = tmp_path / "results.csv"
    with ResultsWriter(target) as writer:
        writer.write(ResultLine(2, "E10001", "emp_1", RowStatus.CREATED))
        writer.write(ResultLine(3, "=cmd|' /C calc'!A0", None, RowStatus.REJECTED, "-bad"))
        writer.write(ResultLine(4, "E10003", "emp_3", RowStatus.ALREADY_EXISTED, "409"))
        assert writer.rows_written == 3
    assert mode_of(target) == 0o600
    assert read_csv(target) == [
        ["row", "external_id", "employee_id", "status", "note"],
        ["2", "E10001", "emp_1", "created", ""],
        ["3", "'=cmd|' /C calc'!A0", "", "rejected", "'-bad"],
        ["4", "E10003", "emp_3", "already_existed", "409"],
    ]


def test_results_writer_names_its_id_columns(tmp_path: Path) -> None:
    """A payroll job can name the reference and server id columns."""
    target = tmp_path / "results.csv"
    with ResultsWriter(
        target, reference_header="employee_reference", server_id_header="item_id"
    ) as writer:
        writer.write(ResultLine(2, "E10001", "item_9", RowStatus.REPLAYED))
    assert read_csv(target)[0] == ["row", "employee_reference", "item_id", "status", "note"]


def test_results_writer_streams_rows_before_close(tmp_path: Path) -> None:
    """Rows written and flushed are on disk while the writer is still open."""
    target = tmp_path / "results.csv"
    writer = ResultsWriter(target)
    writer.write(ResultLine(2, "E1", "emp_1", RowStatus.PENDING))
    writer.flush()
    assert read_csv(target)[1] == ["2", "E1", "emp_1", "pending", ""]
    writer.close()
    writer.close()


@pytest.mark.usefixtures("permissive_umask")
def test_rejects_writer_round_trips_hostile_cells(tmp_path: Path) -> None:
    """rejects.csv escapes formulas, keeps newlines and commas intact, and is 0600."""
    target = tmp_path / "rejects.csv"
    with RejectsWriter(target) as writer:
        writer.write(RejectLine(5, 5, "hire_date", "invalid_date", "no such day: 2026-02-30"))
        writer.write(RejectLine(9, 11, "@field", "=1+1", 'line one\nline two, "quoted"', "req_1"))
        writer.write(RejectLine(12, None, None, "amount", "-12.50 is negative"))
    assert mode_of(target) == 0o600
    assert read_csv(target) == [
        ["row", "line", "field", "code", "reason", "request_id"],
        ["5", "5", "hire_date", "invalid_date", "no such day: 2026-02-30", ""],
        ["9", "11", "'@field", "'=1+1", 'line one\nline two, "quoted"', "req_1"],
        ["12", "", "", "amount", "'-12.50 is negative", ""],
    ]


@pytest.mark.usefixtures("permissive_umask")
def test_write_report_json_is_owner_only_and_keeps_decimals(tmp_path: Path) -> None:
    """report.json is 0600 and holds money as decimal strings and enums as their values."""
    target = tmp_path / "report.json"
    write_report_json(
        target,
        {"total": Decimal("1234.50"), "status": RowStatus.CREATED, "ids": {"b", "a"}},
    )
    assert mode_of(target) == 0o600
    assert target.read_text(encoding="utf-8") == (
        '{\n  "total": "1234.50",\n  "status": "created",\n  "ids": [\n    "a",\n    "b"\n  ]\n}\n'
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_write_report_json_refuses_non_json(tmp_path: Path, value: object) -> None:
    """NaN, infinities and unknown objects are refused instead of writing invalid JSON."""
    with pytest.raises((ValueError, TypeError)):
        write_report_json(tmp_path / "report.json", {"x": value})
    assert not (tmp_path / "report.json").exists()
