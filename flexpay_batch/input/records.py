"""What a reader yields per input row: a :class:`SourceRecord`, data or a :class:`RowProblem`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RowProblem", "SourceRecord", "frozen_set"]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one record could not be read; ``reason`` never quotes the record's values."""

    field: str | None
    code: str
    reason: str


#: Assignment inside the ``__init__`` of a frozen dataclass (what the generated one does, but
#: without looking ``object.__setattr__`` up again for every field: half the cost).
frozen_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One data record: exactly one of ``data`` and ``problem`` is set."""

    row: int
    line: int
    data: dict[str, object] | None
    problem: RowProblem | None

    def __init__(
        self, row: int, line: int, data: dict[str, object] | None, problem: RowProblem | None
    ) -> None:
        # The generated ``__init__``, written out: one record per input row.
        frozen_set(self, "row", row)
        frozen_set(self, "line", line)
        frozen_set(self, "data", data)
        frozen_set(self, "problem", problem)
