"""Owner-only output files: the run directory, results.csv, rejects.csv and report.json.

::

    run_dir = ensure_private_dir(".flexpay/runs/2026-03-13")
    with ResultsWriter(run_dir / "results.csv") as results:
        results.write(ResultLine(2, "E10001", "emp_123", RowStatus.CREATED))
    write_report_json(run_dir / "report.json", {"created": 1})

Every file is born owner-only: it is created by ``os.open(path, flags, 0o600)`` inside a 0700
directory, so there is no moment, however short, when another user could open it (a ``chmod``
after creation leaves exactly such a window). Every CSV cell is escaped against formula
injection, because operators open these files in a spreadsheet. Nothing here decides what a row
means; the writers take plain values.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TextIO

from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.states import RowStatus

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "REJECTS_HEADER",
    "RejectLine",
    "RejectsWriter",
    "ResultLine",
    "ResultsWriter",
    "ensure_private_dir",
    "escape_formula",
    "mask_last4",
    "open_private",
    "write_private_atomic",
    "write_report_json",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

_log = logging.getLogger(__name__)

# O_NOFOLLOW: a symlink planted where an output should go must not redirect our write.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}

# Cells a spreadsheet would evaluate (OWASP "CSV injection"): these leading characters.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: The same as first characters (``cell[:1] in``: the empty cell's "" is not one).
_TRIGGER_CHARS = frozenset(_FORMULA_TRIGGERS)
# A plain negative amount (what our money columns hold) is data, not a formula: keep it readable.
# ASCII digits only: Python's \d would also pass other scripts' digits.
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?")

_MASK = "****"
# Showing the last four of anything shorter than this would reveal half of it or more.
_MASK_MIN_LENGTH = 8


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a directory only its owner can use, creating it (and parents) if needed.

    Directories created here get mode 0700 whatever the umask. An existing directory is accepted
    only if the current user owns it and neither group nor others can write to it (they could
    otherwise swap our files for symlinks); one that others can merely read or enter is accepted
    with a warning, since the files inside are 0600 anyway. Raises ``ConfigError`` otherwise.
    """
    directory = Path(path)
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for parent in reversed(missing):
        _make_private_dir(parent)
    _check_private_dir(directory)
    return directory


def _make_private_dir(path: Path) -> None:
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        return  # created concurrently; _check_private_dir judges it
    # The umask can only remove bits from 0700; put the owner's back so we can use what we made.
    # This never widens access beyond the owner, so it opens no window.
    os.chmod(path, PRIVATE_DIR_MODE)


def _check_private_dir(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"Cannot use run directory {path}: {exc.strerror}.") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"Run directory {path} exists and is not a directory.")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise ConfigError(
            f"Run directory {path} belongs to another user.",
            hint="Choose a run directory you own.",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"Run directory {path} is writable by group or others (mode {mode:o}).",
            hint=f"Run `chmod 700 {path}` or choose another run directory.",
        )
    if mode & 0o077:
        _log.warning("Run directory %s can be listed by other users (mode %o).", path, mode)


def open_private(path: str | os.PathLike[str], mode: str = "w") -> TextIO:
    """Open ``path`` for writing UTF-8 text, creating it owner-only (0600).

    ``mode`` is ``"w"`` (truncate), ``"x"`` (must not exist) or ``"a"`` (append). The file is
    created by ``os.open`` with mode 0600, never widened later. A symlink at ``path`` is refused
    (``OSError``), as is a file another user owns (``PermissionError``). A pre-existing file of
    ours that group or others could read is narrowed to 0600 before anything is written. Newlines
    are written untranslated (``newline=""``), as the csv module requires.
    """
    try:
        flags = _OPEN_FLAGS[mode] | _NOFOLLOW | _CLOEXEC
    except KeyError:
        raise ValueError(f"open_private mode must be 'w', 'x' or 'a', not {mode!r}") from None
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        _secure_open_file(fd, path)
        if mode == "a":
            return open(fd, "a", encoding="utf-8", newline="")
        return open(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


def _secure_open_file(fd: int, path: str | os.PathLike[str]) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"{os.fspath(path)} is not a regular file")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise PermissionError(f"{os.fspath(path)} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        # Only an existing file can get here (os.open applied 0600 to a new one); tighten it
        # through the descriptor before a single byte of this run lands in it.
        os.fchmod(fd, PRIVATE_FILE_MODE)


def write_private_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; the file is owner-only (0600).

    Readers see the old content or the new, never a half-written file: the text goes to a
    temporary file in the same directory (created 0600 with ``O_EXCL``), is fsynced, then
    ``os.replace``d over ``path``, and the directory is fsynced so the rename survives a crash.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return  # some platforms cannot open directories; the replace itself still happened
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def escape_formula(cell: str) -> str:
    """Return ``cell`` safe to open in a spreadsheet (OWASP CSV-injection defence).

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
    ``'`` so the spreadsheet shows it as text instead of evaluating it. A plain negative decimal
    such as ``-12.50`` is left alone: it is a number, and mangling amounts would be a bug of its
    own. Any other cell is returned unchanged, so escaping twice changes nothing.
    """
    if cell.startswith(_FORMULA_TRIGGERS) and not _NEGATIVE_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def mask_last4(value: str | None) -> str:
    """Mask a tax id or account number to ``****6789``; ``""`` for ``None`` or blank.

    The mask has a fixed width, so it does not reveal the value's length either. A value shorter
    than eight characters is masked entirely (``****``): its last four would be half of it.
    """
    if value is None or not value.strip():
        return ""
    clean = value.strip()
    if len(clean) < _MASK_MIN_LENGTH:
        return _MASK
    return _MASK + clean[-4:]


@dataclass(frozen=True, slots=True)
class ResultLine:
    """One row of results.csv.

    ``row`` is the row number the operator looks up in the input file; ``reference`` the row's
    own key (external id, or the employee reference of a payroll row); ``server_id`` the id the
    API gave it (employee id, payroll item id) when there is one; ``note`` a short free text
    that must not quote personal values.
    """

    row: int
    reference: str
    server_id: str | None
    status: RowStatus
    note: str = ""


@dataclass(frozen=True, slots=True)
class RejectLine:
    """One row of rejects.csv: which input row, which field, why, and the API request if any.

    ``line`` is the physical line in the file where the row starts (it differs from ``row`` when
    quoted fields hold newlines); ``request_id`` is the API's ``X-Request-Id`` for rows the server
    refused, ``None`` for rows rejected before sending. ``reason`` must not quote personal values.
    """

    row: int
    line: int | None
    field: str | None
    code: str
    reason: str
    request_id: str | None = None


REJECTS_HEADER = ("row", "line", "field", "code", "reason", "request_id")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return escape_formula(text)


class _PrivateCsvWriter:
    """A header plus escaped rows, streamed to an owner-only file; a context manager."""

    def __init__(self, path: str | os.PathLike[str], header: Iterable[str]) -> None:
        self.path = Path(path)
        self._handle = open_private(self.path, "w")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self.rows_written = 0
        self._write_cells(header)

    def _write_cells(self, cells: Iterable[object]) -> None:
        self._writer.writerow([_cell(value) for value in cells])

    def flush(self) -> None:
        """Push written rows to the operating system (not fsynced; the journal is the record)."""
        self._handle.flush()

    def close(self) -> None:
        """Flush and close the file; closing twice is harmless."""
        self._handle.close()

    def __enter__(self) -> _PrivateCsvWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ResultsWriter(_PrivateCsvWriter):
    """Stream results.csv: ``row, <reference>, <server id>, status, note``, one line per row.

    The two id columns are named by the job: ``external_id``/``employee_id`` for onboarding (the
    default), e.g. ``employee_reference``/``item_id`` for payroll.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        reference_header: str = "external_id",
        server_id_header: str = "employee_id",
    ) -> None:
        super().__init__(path, ("row", reference_header, server_id_header, "status", "note"))

    def write(self, line: ResultLine) -> None:
        """Append one result row, every cell formula-escaped."""
        self.write_fields(line.row, line.reference, line.server_id, line.status.value, line.note)

    def write_fields(
        self, row: int, reference: str, server_id: str | None, status: str, note: str
    ) -> None:
        """``write`` of a line given by its cells (``status`` the status word), without
        building a ``ResultLine``: the outputs write one per input row. The same cells as
        ``write``: the row number and the status word cannot start a formula."""
        # escape_formula only where a cell starts like a formula: one set look-up a cell.
        if reference[:1] in _TRIGGER_CHARS:
            reference = escape_formula(reference)
        if server_id is None:
            server_id = ""
        elif server_id[:1] in _TRIGGER_CHARS:
            server_id = escape_formula(server_id)
        if note[:1] in _TRIGGER_CHARS:
            note = escape_formula(note)
        self._writer.writerow((row, reference, server_id, status, note))
        self.rows_written += 1

    def __enter__(self) -> ResultsWriter:
        return self


class RejectsWriter(_PrivateCsvWriter):
    """Stream rejects.csv: ``row, line, field, code, reason, request_id``, one line per reject."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, REJECTS_HEADER)

    def write(self, line: RejectLine) -> None:
        """Append one rejected row, every cell formula-escaped."""
        self._write_cells(
            (line.row, line.line, line.field, line.code, line.reason, line.request_id)
        )
        self.rows_written += 1

    def __enter__(self) -> RejectsWriter:
        return self


def _json_default(value: object) -> object:
    # Money stays a decimal string (never a float); enums and paths by their plain value.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"report.json cannot hold a {type(value).__name__}")


def write_report_json(path: str | os.PathLike[str], report: Mapping[str, object]) -> None:
    """Write ``report`` as indented JSON to ``path``, atomically and owner-only (0600).

    Decimals become strings, enums their values, paths strings; NaN and infinities are refused
    (``ValueError``) because they are not JSON.
    """
    text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default)
    write_private_atomic(path, text + "\n")
