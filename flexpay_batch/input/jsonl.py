"""JSONL records: one JSON object per line, keys normalised like CSV headers.

Numbers with a fraction arrive as ``Decimal`` (never float) and ``NaN``/``Infinity`` as strings,
so the money check can say why they are refused. See :mod:`~flexpay_batch.input.readers` for
the row problems and numbering shared with CSV.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

from flexpay_batch.input.columns import KNOWN_COLUMNS, normalise_column
from flexpay_batch.input.lines import MAX_LINE_CHARS, LineReader
from flexpay_batch.input.records import RowProblem, SourceRecord

__all__ = ["jsonl_records"]


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


def jsonl_records(lines: LineReader) -> Iterator[SourceRecord]:
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
