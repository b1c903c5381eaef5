"""Streaming readers for CSV and JSONL input: one :class:`SourceRecord` per data row.

::

    for record in iter_records("samples/onboarding.csv"):
        if record.problem:  ...   # this row cannot be read; the rest of the file goes on
        else:  record.data        # {"external_id": "E-1001", "first_name": ...}

Memory is bounded whatever the file size: bytes are read in 64 KiB chunks, decoded
incrementally and split into physical lines; no line may exceed :data:`MAX_LINE_CHARS` and no CSV
field :data:`FIELD_SIZE_LIMIT` (each such row becomes a problem, the reader goes on).

Numbering: ``line`` is the physical line (1-based) where a record starts, counting ``\\r\\n``,
``\\r`` and ``\\n`` alike. ``row`` is what an operator looks up: for CSV the spreadsheet row, the
header being row 1 and every record one row however many lines its quoted fields span (blank
lines count as rows, as they do in a spreadsheet, but yield nothing); for JSONL the line number.

Whole-file failures raise :class:`~flexpay_batch.core.errors.InputFileError` naming the file, on the
first ``next()`` (the readers are lazy). A decoding failure is raised where the bad byte is, which
may be after some records: call :func:`count_rows` first as a pre-flight check when nothing
should be sent from a file that turns out unreadable.

CSV specifics:

- Encoding: UTF-8, with or without BOM, unless ``encoding=`` says otherwise. A UTF-16/UTF-32 BOM,
  UTF-16 without BOM (NUL bytes in the header) or bytes that are not UTF-8 (cp1252 exports) stop
  the read with the line and byte offset and the advice to re-save or pass ``--encoding``.
- Fields are capped by ``csv.field_size_limit(FIELD_SIZE_LIMIT)``, a process-wide setting (the
  ``csv`` module has no per-reader one); it only raises the default 128 KiB cap. After an
  oversized quoted field the reader skips to where the quotes balance again, so one huge field
  is one problem, not thousands of rows of junk.
- The delimiter is sniffed from the header line only: ``,``, ``;`` or tab, whichever occurs most
  outside quotes (comma on a tie).
- Header cells are normalised (:func:`normalise_column`) and mapped through
  :data:`~flexpay_batch.input.columns.COLUMN_ALIASES`. Two cells naming the same column, or a header
  with no known column at all (a file without a header row), raise ``InputFileError``.
  Unnamed (empty) header cells are allowed as long as the rows leave them empty.
- An empty file raises ``InputFileError``; a header with no rows yields nothing (``count_rows``
  is 0): "no rows" is an answer, not a crash. Rows whose cells are all blank are skipped.
- Row problems (codes): ``short_row``, ``long_row`` (non-empty cells beyond the header),
  ``unnamed_column``, ``nul_byte``, ``unclosed_quote`` (a quote that swallows the rest of the
  file), ``bad_quoting``, ``field_too_large``, ``line_too_long``.

JSONL specifics: one JSON object per line, blank lines skipped, keys normalised like CSV headers;
numbers with a fraction arrive as ``Decimal`` (never float) and ``NaN``/``Infinity`` as strings (so
the money check can say why they are refused). Row problems: ``invalid_json``, ``not_object``,
``duplicate_key``, ``truncated`` (the last line, cut off without a newline), ``line_too_long``.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Callable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Final, TypeVar, cast

from flexpay_batch.core.errors import InputFileError
from flexpay_batch.input.columns import KNOWN_COLUMNS, ONBOARDING_COLUMNS, normalise_column
from flexpay_batch.input.jsonl import jsonl_records
from flexpay_batch.input.lines import (
    FIELD_SIZE_LIMIT,
    MAX_LINE_CHARS,
    LineReader,
    PathLike,
    choose_encoding,
    open_source,
    require_regular_file,
)
from flexpay_batch.input.records import RowProblem, SourceRecord

__all__ = [
    "FIELD_SIZE_LIMIT",
    "MAX_KEPT_REFERENCES",
    "MAX_LINE_CHARS",
    "InputReferences",
    "RowProblem",
    "SourceRecord",
    "count_rows",
    "count_rows_keeping_references",
    "detect_format",
    "iter_records",
    "iter_references",
    "normalise_column",
    "read_columns",
    "reference_of",
    "require_regular_file",
]


_T = TypeVar("_T")
#: (row, line, reference) of one record (``iter_references``).
_Reference = tuple[int, int, str]

_DELIMITERS = ",;\t"
_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: PathLike, format: str | None = None) -> str:
    """``"csv"`` or ``"jsonl"``: ``format`` if given, else from the file name's suffix."""
    if format is not None:
        chosen = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(format.lower())
    else:
        chosen = _FORMATS.get(Path(path).suffix.lower())
    if chosen is None:
        raise InputFileError(
            f"{path}: cannot tell the file format from its name",
            hint="Save the rows in a file whose name ends in .csv or .jsonl and pass that file.",
        )
    return chosen


def iter_records(
    path: PathLike,
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> Iterator[SourceRecord]:
    """Stream the data records of ``path``, in file order, with bounded memory.

    ``encoding`` overrides the UTF-8 default (a BOM is still skipped); ``format`` overrides the
    suffix. Raises ``InputFileError`` (lazily) when the file as a whole cannot be read.
    """
    kind = detect_format(path, format)
    with open_source(path) as stream:
        chosen = choose_encoding(stream, encoding, path)
        lines = LineReader(stream, chosen, path)
        if kind == "csv":
            yield from _CsvReader(lines, path).records()
        else:
            yield from jsonl_records(lines)


def iter_references(
    path: PathLike,
    columns: tuple[str, ...],
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> Iterator[tuple[int, int, str]]:
    """``(row, line, reference)`` of every record :func:`iter_records` yields, in file order.

    ``reference`` is the stripped value of the first of ``columns`` the record has non-empty
    (``""`` when none has, or the record is a problem), exactly as read from ``iter_records``'
    data. For the outputs, which show each row's reference: a CSV row of the header's shape
    gives its cells straight away, without building its record (a few microseconds a row).
    """
    if detect_format(path, format) != "csv":
        for record in iter_records(path, encoding=encoding, format=format):
            yield record.row, record.line, reference_of(record.data, columns)
        return
    with open_source(path) as stream:
        chosen = choose_encoding(stream, encoding, path)
        yield from _CsvReader(LineReader(stream, chosen, path), path).references(columns)


#: Most records whose references ``count_rows_keeping_references`` keeps (some 30 bytes each,
#: ~7 MiB at most): the outputs of a larger file read its references again from the file.
MAX_KEPT_REFERENCES: Final = 250_000
#: References joined per block of ``InputReferences``.
_BLOCK_REFERENCES: Final = 4096


class InputReferences:
    """``(row, line, reference)`` of every record of a file, in file order, kept compactly:
    two integer arrays and the references joined into NUL-separated blocks (a reference never
    holds a NUL: ``append`` refuses one). Iterating gives them back as ``iter_references``
    gave them, without reading the file again."""

    __slots__ = ("_blocks", "_lines", "_pending", "_rows")

    def __init__(self) -> None:
        self._rows = array("q")
        self._lines = array("q")
        self._blocks: list[str] = []
        self._pending: list[str] = []

    def append(self, row: int, line: int, reference: str) -> bool:
        """Keep one record; False, keeping nothing, when ``reference`` holds a NUL."""
        if "\x00" in reference:
            return False
        self._rows.append(row)
        self._lines.append(line)
        pending = self._pending
        pending.append(reference)
        if len(pending) == _BLOCK_REFERENCES:
            self._blocks.append("\x00".join(pending))
            pending.clear()
        return True

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[tuple[int, int, str]]:
        blocks = [*self._blocks, "\x00".join(self._pending)] if self._pending else self._blocks
        references = chain.from_iterable(block.split("\x00") for block in blocks)
        return zip(self._rows, self._lines, references, strict=True)


def count_rows_keeping_references(
    path: PathLike,
    columns: tuple[str, ...],
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> tuple[int, InputReferences | None]:
    """:func:`count_rows`, keeping every record's ``iter_references`` triple on the way.

    The same count and the same errors; the references are None for a file of more than
    ``MAX_KEPT_REFERENCES`` records (or one whose reference holds a NUL). One pass for the
    run's count and its outputs' references, instead of one each.
    """
    kept: InputReferences | None = InputReferences()
    count = 0
    for row, line, reference in iter_references(path, columns, encoding=encoding, format=format):
        count += 1
        if kept is not None and (
            count > MAX_KEPT_REFERENCES or not kept.append(row, line, reference)
        ):
            kept = None
    return count, kept


def reference_of(data: Mapping[str, object] | None, columns: tuple[str, ...]) -> str:
    """The stripped value of the first of ``columns`` that ``data`` has non-empty, else ``""``
    (a blank value counts as given: it gives ``""``)."""
    if not data:
        return ""
    for column in columns:
        value = data.get(column)
        if value is not None and value != "":
            return str(value).strip()
    return ""


def read_columns(
    path: PathLike,
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> tuple[str, ...] | None:
    """The normalised column names of a CSV file's header; None for JSONL.

    Reads only up to the first data row, so a header can be checked before anything else
    happens. JSONL has no header (each object names its own keys, and an optional key may be
    absent from one row and present in the next), so it gives None. Raises ``InputFileError``
    like :func:`iter_records` when the header itself cannot be read.
    """
    if detect_format(path, format) != "csv":
        return None
    with open_source(path) as stream:
        chosen = choose_encoding(stream, encoding, path)
        reader = _CsvReader(LineReader(stream, chosen, path), path)
        for _ in reader.records():
            break
        return tuple(name for name in reader.header if name)


def count_rows(
    path: PathLike,
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> int:
    """How many records :func:`iter_records` yields (problems included), streaming.

    Reads the whole file once, so it doubles as a pre-flight check: it raises the same
    ``InputFileError`` (encoding, header) before anything has been sent. A CSV file is
    parsed exactly as ``iter_records`` parses it, without building its records.
    """
    if detect_format(path, format) != "csv":
        return sum(1 for _ in iter_records(path, encoding=encoding, format=format))
    with open_source(path) as stream:
        chosen = choose_encoding(stream, encoding, path)
        return _CsvReader(LineReader(stream, chosen, path), path).count()


class _Feed:
    """The lines handed to ``csv.reader``: counted, with the quote parity of the record.

    When ``csv`` gives up on an oversized field it resumes on the next line, which would read the
    rest of a huge quoted field as rows of junk. :meth:`skip_open_quote` instead skips lines
    until the record's quotes balance again (quotes inside a quoted field come in pairs).
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.count = 0
        self._quotes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        self._quotes += line.count('"')
        return line

    def start_record(self) -> int:
        """Mark the start of a record; returns the line number it starts on."""
        self._quotes = 0
        return self.count + 1

    def skip_open_quote(self) -> None:
        """Skip lines until the current record's quotes are balanced (or the file ends)."""
        while self._quotes % 2:
            if next(self, None) is None:
                return


def _sniff_delimiter(line: str) -> str:
    """The delimiter occurring most often outside quotes in ``line`` (comma on a tie)."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(_DELIMITERS, key=lambda d: counts[d])


def _is_blank(cells: list[str]) -> bool:
    """True when every cell is empty or white space (``not cell.strip()`` for each).

    A loop that stops at the first cell with text (the first, in nearly every row) rather
    than a generator stripping every cell: this runs for every row of every pass.
    """
    for cell in cells:  # noqa: SIM110 (a loop: ``all`` over a generator is what this avoids)
        if cell and not cell.isspace():
            return False
    return True


class _CsvReader:
    """Turns physical lines into records, tracking spreadsheet rows and physical lines."""

    def __init__(self, lines: LineReader, path: PathLike) -> None:
        self._lines = lines
        self._path = path
        self._header: list[str | None] = []
        #: Every header cell has a name (the usual case): rows of the header's width then
        #: take a fast path in ``_shape_problem`` and ``_record``.
        self._all_named = False

    @property
    def header(self) -> list[str | None]:
        """The normalised header cells (None for an unnamed one); empty before the first row."""
        return self._header

    def records(self) -> Iterator[SourceRecord]:
        """The data records; raises ``InputFileError`` (lazily) for a missing or broken header."""
        return self._scan(self._record)

    def count(self) -> int:
        """How many records ``records`` would yield, without building them (same errors)."""
        return sum(1 for _ in self._scan(self._counted))

    def references(self, columns: tuple[str, ...]) -> Iterator[tuple[int, int, str]]:
        """``(row, line, reference)`` of each record ``records`` would yield (see
        ``iter_references``), the records of the header's shape never built."""
        positions: list[int] | None = None

        def referenced(cells: list[str], row: int, start: int, end: int) -> _Reference | None:
            nonlocal positions
            header = self._header
            if (
                self._all_named
                and len(cells) == len(header)
                and not self._lines.oversized
                and not _is_blank(cells)
                and "\x00" not in "".join(cells)
            ):
                # What ``_record`` would build: dict(zip(header, cells)), read by reference_of.
                if positions is None:
                    positions = [header.index(column) for column in columns if column in header]
                for position in positions:
                    cell = cells[position]
                    if cell != "":
                        return row, start, cell.strip()
                return row, start, ""
            record = self._record(cells, row, start, end)
            if record is None:
                return None
            return row, start, reference_of(record.data, columns)

        for item in self._scan(referenced):
            if isinstance(item, SourceRecord):  # a row ``csv`` could not read: a problem
                yield item.row, item.line, ""
            else:
                yield item

    def _counted(self, cells: list[str], row: int, start: int, end: int) -> bool | None:
        """``_record``'s decision alone: True where it gives a record, None where not."""
        return None if self._screen(cells, start, end) is False else True

    def _screen(self, cells: list[str], start: int, end: int) -> RowProblem | bool:
        """What a parsed row is before its cells are read: False for a blank row or the
        header (taken here), the problem of a row over the size limit, else True."""
        oversized = self._oversized_between(start, end) if self._lines.oversized else None
        if oversized is not None:
            if not self._header:
                raise InputFileError(f"{self._path}: the header row is {oversized.reason}")
            return oversized
        if _is_blank(cells):
            return False
        if not self._header:
            self._header = self._parse_header(cells)
            self._all_named = all(self._header)
            return False
        return True

    def _scan(
        self, on_row: Callable[[list[str], int, int, int], _T | None]
    ) -> Iterator[_T | SourceRecord]:
        """Parse the file row by row: ``on_row(cells, row, start, end)`` for each parsed row
        (what it returns, unless None), a problem record for each row ``csv`` cannot read."""
        source = iter(self._lines)
        peeked = self._peek_first_line(source)
        if peeked is None:
            raise InputFileError(
                f"{self._path}: the file is empty (or blank); expected a header row"
            )
        delimiter = _sniff_delimiter(peeked[-1])
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        feed = _Feed(chain(peeked, source))
        reader = csv.reader(feed, delimiter=delimiter, strict=True)
        row = 0
        while True:
            start = feed.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row += 1
                if "field larger than field limit" in str(exc):
                    feed.skip_open_quote()
                yield self._csv_error(exc, row, start, feed.count)
                continue
            row += 1
            record = on_row(cells, row, start, feed.count)
            if record is not None:
                yield record

    @staticmethod
    def _peek_first_line(source: Iterator[str]) -> list[str] | None:
        """The lines up to and including the first non-blank one, or None for an empty file."""
        seen: list[str] = []
        for line in source:
            seen.append(line)
            if line.strip():
                return seen
        return None

    def _record(self, cells: list[str], row: int, start: int, end: int) -> SourceRecord | None:
        """The record for one parsed row, None for a blank row or the header."""
        screened = self._screen(cells, start, end)
        if screened is False:
            return None
        if screened is not True:
            return SourceRecord(row, start, None, screened)
        if self._all_named and len(cells) == len(self._header) and "\x00" not in "".join(cells):
            # The shape checks below would all pass: no short or long row, no NUL, no value
            # under an unnamed column.
            names = cast("list[str]", self._header)
            return SourceRecord(row, start, dict(zip(names, cells, strict=True)), None)
        problem = self._shape_problem(cells, cut_off=self._is_cut_off(end))
        if problem is not None:
            return SourceRecord(row, start, None, problem)
        data: dict[str, object] = {
            name: cell for name, cell in zip(self._header, cells, strict=False) if name
        }
        return SourceRecord(row, start, data, None)

    def _oversized_between(self, start: int, end: int) -> RowProblem | None:
        hit = sorted(n for n in self._lines.oversized if start <= n <= end)
        if not hit:
            return None
        limit = MAX_LINE_CHARS // (1 << 20)
        return RowProblem(
            None, "line_too_long", f"longer than {limit} MiB (line {hit[0]}) and was skipped"
        )

    def _csv_error(self, exc: csv.Error, row: int, start: int, end: int) -> SourceRecord:
        message = str(exc)
        if "unexpected end of data" in message:
            problem = RowProblem(
                None,
                "unclosed_quote",
                f"a quoted field opened in this row is never closed: lines {start}-{end} "
                "(the rest of the file) were swallowed by it",
            )
        elif "field larger than field limit" in message:
            problem = RowProblem(
                None,
                "field_too_large",
                f"a field is larger than {FIELD_SIZE_LIMIT // (1 << 20)} MiB (lines {start}-"
                f"{end}); often a quote that is never closed, swallowing the lines after it",
            )
        else:
            problem = RowProblem(
                None, "bad_quoting", f"cannot be read as CSV ({message}); check the quotes"
            )
        if not self._header:
            raise InputFileError(f"{self._path}: the header row cannot be read: {problem.reason}")
        return SourceRecord(row, start, None, problem)

    def _parse_header(self, cells: list[str]) -> list[str | None]:
        if any("\x00" in cell for cell in cells):
            raise InputFileError(
                f"{self._path}: the header contains NUL bytes; the file is probably UTF-16 "
                "without a byte order mark: save it as UTF-8, or pass --encoding utf-16-le"
            )
        names: list[str | None] = [normalise_column(cell) or None for cell in cells]
        first_seen: dict[str, int] = {}
        for position, name in enumerate(names, start=1):
            if name is None:
                continue
            if name in first_seen:
                raise InputFileError(
                    f"{self._path}: header columns {first_seen[name]} and {position} both name "
                    f"{name!r}; rename or remove one"
                )
            first_seen[name] = position
        if not KNOWN_COLUMNS.intersection(first_seen):
            raise InputFileError(
                f"{self._path}: the first row is not a header (no known column name in it); "
                f"add a header row such as {','.join(ONBOARDING_COLUMNS[:4])},..."
            )
        return names

    def _is_cut_off(self, end: int) -> bool:
        """Whether the record ending on line ``end`` is the file's last, without a newline."""
        return self._lines.ended_without_newline and end == self._lines.lines_read

    def _shape_problem(self, cells: list[str], *, cut_off: bool) -> RowProblem | None:
        """A row problem when the cells do not fit the header (count, NULs, unnamed values)."""
        width = len(self._header)
        if len(cells) < width:
            counts = f"has {len(cells)} cells but the header has {width} columns"
            if cut_off:
                return RowProblem(None, "truncated", f"the file ends inside this row: {counts}")
            return RowProblem(None, "short_row", counts)
        if not _is_blank(cells[width:]):
            return RowProblem(
                None,
                "long_row",
                f"has {len(cells)} cells but the header has {width} columns; "
                f"values found after column {width}",
            )
        for position, (name, cell) in enumerate(zip(self._header, cells, strict=False), 1):
            if "\x00" in cell:
                return RowProblem(name or f"column {position}", "nul_byte", "contains a NUL byte")
            if name is None and cell.strip():
                return RowProblem(
                    f"column {position}",
                    "unnamed_column",
                    f"has a value in column {position}, which has no header name",
                )
        return None
