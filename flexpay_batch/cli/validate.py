"""``flexpay-batch validate FILE``: check a file with no network and no token.

Streams the file once (flat memory for any size): schema, duplicates, totals. Every rejected
row is named with its file, row and field; the first ``MAX_SHOWN`` are printed, all of them go
to ``--rejects`` when given. References that only the server knows (pay groups, employees) are
checked by the real run's pre-flight, not here.
"""

from __future__ import annotations

import dataclasses
import sys
from itertools import chain
from pathlib import Path

from flexpay_batch.core import errors
from flexpay_batch.core.files import RejectLine, RejectsWriter
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import (
    Rejection,
    ValidationSummary,
    format_rejection,
    validate_rows,
)
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import KINDS, guess_kind

MAX_SHOWN = 50


def validate_file(path: Path, *, kind: str, encoding: str | None, rejects_path: Path | None) -> int:
    """Validate ``path``; print findings and a summary; 0 if every row is valid, else 1."""
    records = iter_records(path, encoding=encoding)
    first = next(records, None)
    if first is None:
        print(f"{path}: no rows", file=sys.stderr)
        return 1
    if kind == "auto":
        kind = guess_kind((first.data or {}).keys()).name
    if kind not in KINDS:
        names = ", ".join(KINDS)
        raise errors.UsageError(f"--kind must be one of {names} or auto, not {kind!r}")
    # A header problem is the file's, not each row's: say it once (exit 2).
    check_header(KINDS[kind], path, encoding=encoding)
    summary = ValidationSummary()
    shown = 0
    writer = RejectsWriter(rejects_path) if rejects_path else None
    try:
        for result in validate_rows(
            chain([first], records), KINDS[kind].model, source_name=str(path)
        ):
            summary.add(result)
            if not isinstance(result, Rejection):
                continue
            if writer is not None:
                writer.write(_reject_line(result))
            if shown < MAX_SHOWN:
                print(format_rejection(result, str(path)), file=sys.stderr)
                shown += 1
    finally:
        if writer is not None:
            writer.close()
    _print_summary(path, kind, summary, shown)
    return 0 if summary.rejected == 0 and summary.rows > 0 else 1


def _reject_line(rejection: Rejection) -> RejectLine:
    """The rejects.csv line of a row refused before sending: its five fields, no request id."""
    return RejectLine(**dataclasses.asdict(rejection))


def _print_summary(path: Path, kind: str, summary: ValidationSummary, shown: int) -> None:
    if summary.rejected > shown:
        print(f"... and {summary.rejected - shown} more rejected rows", file=sys.stderr)
    print(
        f"{path} ({kind}): {summary.rows} rows, {summary.valid} valid, {summary.rejected} rejected"
    )
    for code, count in sorted(summary.rejected_by_code.items()):
        print(f"  rejected {code}: {count}")
    for currency, total in sorted(summary.gross_by_currency.items()):
        print(f"  total gross {currency}: {total:.2f} over {summary.valid} rows")
