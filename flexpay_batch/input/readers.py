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

import codecs
import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from flexpay_batch.core.errors import InputFileError
from flexpay_batch.input.columns import COLUMN_ALIASES, KNOWN_COLUMNS, ONBOARDING_COLUMNS

__all__ = [
    "FIELD_SIZE_LIMIT",
    "MAX_LINE_CHARS",
    "RowProblem",
    "SourceRecord",
    "count_rows",
    "detect_format",
    "iter_records",
    "normalise_column",
    "read_columns",
    "require_regular_file",
]

FIELD_SIZE_LIMIT = 1 << 20
"""Largest CSV field, in characters (1 MiB); a bigger one is a row problem."""

MAX_LINE_CHARS = 2 * FIELD_SIZE_LIMIT
"""Largest physical line kept in memory, in characters; a longer one is skipped as a problem."""

_CHUNK_BYTES = 1 << 16
_NEWLINE = re.compile(r"\r\n|\r|\n")
_LINE_PLACEHOLDER = "\n"
_DELIMITERS = ",;\t"
_COLUMN_SEPARATORS = re.compile(r"[\s\-./]+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_UTF_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one record could not be read; ``reason`` never quotes the record's values."""

    field: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One data record: exactly one of ``data`` and ``problem`` is set."""

    row: int
    line: int
    data: dict[str, object] | None
    problem: RowProblem | None


def normalise_column(name: str) -> str:
    """A header cell as a canonical column name.

    Zero-width characters go, no-break spaces become spaces, case folds, runs of spaces, dashes,
    dots and slashes become one underscore, and known aliases map to their column:
    ``" E-Mail Address "`` → ``email``.
    """
    text = name.translate(_ZERO_WIDTH).replace("\u00a0", " ").strip().casefold()
    text = _COLUMN_SEPARATORS.sub("_", text).strip("_")
    return COLUMN_ALIASES.get(text, text)


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
    with _open(path) as stream:
        chosen = _choose_encoding(stream, encoding, path)
        lines = _LineReader(stream, chosen, path)
        if kind == "csv":
            yield from _CsvReader(lines, path).records()
        else:
            yield from _jsonl_records(lines)


def count_rows(
    path: PathLike,
    *,
    encoding: str | None = None,
    format: str | None = None,
) -> int:
    """How many records :func:`iter_records` yields (problems included), streaming.

    Reads the whole file once, so it doubles as a pre-flight check: it raises the same
    ``InputFileError`` (encoding, header) before anything has been sent.
    """
    return sum(1 for _ in iter_records(path, encoding=encoding, format=format))


def require_regular_file(path: PathLike) -> None:
    """Raise ``InputFileError`` unless ``path`` is a regular file.

    A run reads its input several times (hash, count, validate and send, verify at the end),
    so a pipe, a terminal, ``/dev/stdin`` or ``/dev/zero`` would hang or give different rows
    each time; they are refused up front. ``stat`` follows symlinks, so a link to a regular
    file is fine, and it opens nothing, so a FIFO without a writer cannot block here.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(
            f"{path}: is not a regular file (a pipe, a device or standard input); the input is "
            "read more than once",
            hint="Save the rows to a .csv or .jsonl file first and pass that file.",
        )


def _open(path: PathLike) -> BinaryIO:
    require_regular_file(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None


def _choose_encoding(stream: BinaryIO, requested: str | None, path: PathLike) -> str:
    """The codec to decode ``stream`` with; refuses UTF-16/32 unless asked for explicitly."""
    head = stream.read(4)
    stream.seek(0)
    if requested is not None:
        try:
            "".encode(requested)  # LookupError for unknown and bytes-to-bytes codecs (base64)
            name = codecs.lookup(requested).name
        except LookupError:
            raise InputFileError(f"{path}: unknown encoding {requested!r}") from None
        return "utf-8-sig" if name == "utf-8" else name
    for bom, family in _UTF_BOMS:
        if head.startswith(bom):
            raise InputFileError(
                f"{path}: the file is {family} (it starts with a {family} byte order mark); "
                f"save it as UTF-8, or pass --encoding {family.lower()}"
            )
    return "utf-8-sig"


def _decode_error(
    path: PathLike, encoding: str, exc: UnicodeDecodeError, offset: int, line: int
) -> InputFileError:
    bad = exc.object[exc.start : exc.start + 1].hex().upper()
    label = "UTF-8" if encoding == "utf-8-sig" else encoding
    return InputFileError(
        f"{path}: line {line} is not valid {label} (byte 0x{bad} at offset {offset}); "
        "save the file as UTF-8, or pass --encoding (for example cp1252) if you know its encoding"
    )


class _LineReader:
    """The decoded physical lines of a byte stream, split exactly where ``csv`` splits.

    Each line keeps its terminator (``\\r\\n``, ``\\r`` or ``\\n``), as ``csv`` needs when
    quoted fields span lines. A line longer than ``MAX_LINE_CHARS`` is not kept: its number goes
    into ``oversized`` and a bare ``"\\n"`` stands in for it, so line numbers stay right.
    """

    def __init__(self, stream: BinaryIO, encoding: str, path: PathLike) -> None:
        self._stream = stream
        self._encoding = encoding
        self._path = path
        self.lines_read = 0
        self.oversized: set[int] = set()
        self.ended_without_newline = False

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self._encoding)("strict")
        pending = ""
        skipping = False
        offset = 0
        while True:
            chunk = self._stream.read(_CHUNK_BYTES)
            final = not chunk
            text = self._decode(decoder, chunk, final, offset, pending)
            offset += len(chunk)
            if skipping:
                text, skipping = self._skip_to_line_end(text)
                if not skipping:
                    yield self._count(_LINE_PLACEHOLDER)
            pending += text
            pending, lines = self._split(pending, final)
            for line in lines:
                if len(line) > MAX_LINE_CHARS:
                    self.oversized.add(self.lines_read + 1)
                    line = _LINE_PLACEHOLDER
                yield self._count(line)
            if len(pending) > MAX_LINE_CHARS:
                self.oversized.add(self.lines_read + 1)
                pending, skipping = "", True
            if final:
                break
        if pending or skipping:
            self.ended_without_newline = True
            yield self._count(_LINE_PLACEHOLDER if skipping else pending)

    def _count(self, line: str) -> str:
        self.lines_read += 1
        return line

    def _decode(
        self,
        decoder: codecs.IncrementalDecoder,
        chunk: bytes,
        final: bool,
        offset: int,
        pending: str,
    ) -> str:
        buffered = decoder.getstate()[0]
        try:
            return decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            # Positions in `exc` are relative to the bytes the decoder held plus this chunk.
            good = exc.object[: exc.start].decode(self._encoding, "replace")
            line = self.lines_read + 1 + len(_NEWLINE.findall(pending + good))
            where = offset - len(buffered) + exc.start
            raise _decode_error(self._path, self._encoding, exc, where, line) from None

    @staticmethod
    def _split(text: str, final: bool) -> tuple[str, list[str]]:
        """Complete lines of ``text`` and the unfinished rest."""
        lines: list[str] = []
        start = 0
        for match in _NEWLINE.finditer(text):
            if match.end() == len(text) and match.group() == "\r" and not final:
                break  # the "\n" of a "\r\n" may be in the next chunk
            lines.append(text[start : match.end()])
            start = match.end()
        return text[start:], lines

    @staticmethod
    def _skip_to_line_end(text: str) -> tuple[str, bool]:
        """Drop the rest of an oversized line; returns what follows it and whether it goes on."""
        match = _NEWLINE.search(text)
        if match is None:
            return "", True
        # A "\r" ending this chunk may pair with a "\n" in the next: that "\n" would then be
        # read as one blank line, which is harmless (blank lines are skipped).
        return text[match.end() :], False


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
    return all(not cell.strip() for cell in cells)


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
    with _open(path) as stream:
        chosen = _choose_encoding(stream, encoding, path)
        reader = _CsvReader(_LineReader(stream, chosen, path), path)
        for _ in reader.records():
            break
        return tuple(name for name in reader.header if name)


class _CsvReader:
    """Turns physical lines into records, tracking spreadsheet rows and physical lines."""

    def __init__(self, lines: _LineReader, path: PathLike) -> None:
        self._lines = lines
        self._path = path
        self._header: list[str | None] = []

    @property
    def header(self) -> list[str | None]:
        """The normalised header cells (None for an unnamed one); empty before the first row."""
        return self._header

    def records(self) -> Iterator[SourceRecord]:
        """The data records; raises ``InputFileError`` for a missing or broken header."""
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
            record = self._record(cells, row, start, feed.count)
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
        oversized = self._oversized_between(start, end)
        if oversized is not None:
            if not self._header:
                raise InputFileError(f"{self._path}: the header row is {oversized.reason}")
            return SourceRecord(row, start, None, oversized)
        if _is_blank(cells):
            return None
        if not self._header:
            self._header = self._parse_header(cells)
            return None
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


class _DuplicateKey(Exception):
    """Raised from the JSON object hook when one object repeats a key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _keep_constant(name: str) -> str:
    # NaN and Infinity are not JSON; keep the word so the field check can say what is wrong.
    return name


def _json_problem(text: str, is_last: bool) -> tuple[object, RowProblem | None]:
    """The parsed value of one line, or the problem that prevents it."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_float=Decimal,
            parse_constant=_keep_constant,
        )
    except _DuplicateKey as exc:
        # The hook cannot tell nesting depth: name the field only when it is a known column.
        name = normalise_column(exc.key)
        return None, RowProblem(
            name if name in KNOWN_COLUMNS else None,
            "duplicate_key",
            f"the key {exc.key!r} appears twice in one object",
        )
    except RecursionError:
        return None, RowProblem(None, "invalid_json", "JSON nested too deeply")
    except ValueError as exc:
        if is_last:
            return None, RowProblem(
                None, "truncated", "the file ends in the middle of this line (cut off?)"
            )
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "bad number"
        return None, RowProblem(None, "invalid_json", f"not valid JSON ({detail})")
    return value, None


def _jsonl_data(value: object) -> tuple[dict[str, object] | None, RowProblem | None]:
    """The record data of one parsed line, with keys normalised like CSV headers."""
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else "a single value"
        return None, RowProblem(
            None, "not_object", f"holds {kind}; each line must be one JSON object"
        )
    data: dict[str, object] = {}
    for key, item in value.items():
        name = normalise_column(key)
        if name in data:
            return None, RowProblem(
                name, "duplicate_key", "two keys of this object name the same field"
            )
        data[name] = item
    return data, None


def _jsonl_records(lines: _LineReader) -> Iterator[SourceRecord]:
    """One record per non-blank line; row and line are both the line number."""
    for number, line in enumerate(lines, start=1):
        if number in lines.oversized:
            limit = MAX_LINE_CHARS // (1 << 20)
            problem = RowProblem(None, "line_too_long", f"longer than {limit} MiB; skipped")
            yield SourceRecord(number, number, None, problem)
            continue
        text = line.strip()
        if text:
            is_last = lines.ended_without_newline and not line.endswith(("\n", "\r"))
            yield _jsonl_record(text, number, is_last)


def _jsonl_record(text: str, number: int, is_last: bool) -> SourceRecord:
    value, problem = _json_problem(text, is_last)
    if problem is not None:
        return SourceRecord(number, number, None, problem)
    data, problem = _jsonl_data(value)
    return SourceRecord(number, number, data, problem)
