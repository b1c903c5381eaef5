"""What a reader yields per input row: a :class:`SourceRecord`, data or a :class:`RowProblem`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RowProblem", "SourceRecord"]


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
