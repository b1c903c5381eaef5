"""The decoded physical lines of an input file, read in 64 KiB chunks with bounded memory.

::

    with open_source(path) as stream:
        for line in LineReader(stream, choose_encoding(stream, None, path), path):
            ...  # each line keeps its terminator; an over-long one arrives as LINE_PLACEHOLDER

The CSV and JSONL readers (:mod:`~flexpay_batch.input.readers`, :mod:`~flexpay_batch.input.jsonl`)
both stand on this: it owns the encoding choice, the exact line numbering (``\\r\\n``, ``\\r`` and
``\\n`` alike) and the errors that name the line and byte offset of a decoding failure.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Iterator
from typing import BinaryIO, Final

from flexpay_batch.core.errors import InputFileError

__all__ = [
    "FIELD_SIZE_LIMIT",
    "LINE_PLACEHOLDER",
    "MAX_LINE_CHARS",
    "LineReader",
    "PathLike",
    "choose_encoding",
    "open_source",
]

FIELD_SIZE_LIMIT: Final = 1 << 20
"""Largest CSV field, in characters (1 MiB); a bigger one is a row problem."""

MAX_LINE_CHARS: Final = 2 * FIELD_SIZE_LIMIT
"""Largest physical line kept in memory, in characters; a longer one is skipped as a problem."""

LINE_PLACEHOLDER: Final = "\n"
"""What stands in for a line longer than ``MAX_LINE_CHARS`` (its number is in ``oversized``)."""

_CHUNK_BYTES = 1 << 16
_NEWLINE = re.compile(r"\r\n|\r|\n")
#: One whole line, terminator kept: ``findall`` gives all of a text's lines in one call.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
_UTF_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

PathLike = str | os.PathLike[str]


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


def open_source(path: PathLike) -> BinaryIO:
    require_regular_file(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None


def choose_encoding(stream: BinaryIO, requested: str | None, path: PathLike) -> str:
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


class LineReader:
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
                    yield self._count(LINE_PLACEHOLDER)
            pending += text
            pending, lines = self._split(pending, final)
            for line in lines:
                if len(line) > MAX_LINE_CHARS:
                    self.oversized.add(self.lines_read + 1)
                    line = LINE_PLACEHOLDER
                self.lines_read += 1  # ``_count``, inlined: once per line of the file
                yield line
            if len(pending) > MAX_LINE_CHARS:
                self.oversized.add(self.lines_read + 1)
                pending, skipping = "", True
            if final:
                break
        if pending or skipping:
            self.ended_without_newline = True
            yield self._count(LINE_PLACEHOLDER if skipping else pending)

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
        """Complete lines of ``text`` and the unfinished rest.

        The lines end at the last terminator; a "\r" ending a chunk that is not the last
        waits, as the "\n" of a "\r\n" may be in the next one. A text whose lines all end
        alike ("\n", or "\r\n") is split by ``str.split`` (~5x faster than a regex per line);
        a mixed one by ``findall``, kept off the rest (where it would try every position of a
        long unfinished line).
        """
        stop = len(text) - 1 if not final and text.endswith("\r") else len(text)
        end = max(text.rfind("\n", 0, stop), text.rfind("\r", 0, stop)) + 1
        if not end:
            return text, []
        whole = text[:end]
        if "\r" not in whole:
            return text[end:], [line + "\n" for line in whole[:-1].split("\n")]
        crlf = whole.count("\r\n")
        if crlf == whole.count("\r") == whole.count("\n"):
            return text[end:], [line + "\r\n" for line in whole[:-2].split("\r\n")]
        lines: list[str] = _LINE.findall(whole)
        return text[end:], lines

    @staticmethod
    def _skip_to_line_end(text: str) -> tuple[str, bool]:
        """Drop the rest of an oversized line; returns what follows it and whether it goes on."""
        match = _NEWLINE.search(text)
        if match is None:
            return "", True
        # A "\r" ending this chunk may pair with a "\n" in the next: that "\n" would then be
        # read as one blank line, which is harmless (blank lines are skipped).
        return text[match.end() :], False
