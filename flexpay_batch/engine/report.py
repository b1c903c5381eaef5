"""The run's output files, rebuilt from the journal and the input after every invocation.

``results.csv`` has one line per input row (row, the row's reference, the server's id, status,
note); ``rejects.csv`` one line per rejected or failed row (row, line, field, code, reason,
request id); ``report.json`` the job, the configuration, the counts and what happened. All are
created owner-only (``outputs``). The journal holds no personal data, so the row references
(external ids) come from the input file, which is why the files are rebuilt in one streaming
pass rather than appended to while the run goes: from the references the run's count of the
input's rows kept in memory (``input.readers.InputReferences``), or, for a file too large to
keep them of, read again from the file.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from flexpay_batch.core.files import (
    RejectLine,
    RejectsWriter,
    ResultLine,
    ResultsWriter,
    write_report_json,
)
from flexpay_batch.core.redact import redact_text
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.htmlreport import REPORT_HTML_NAME, write_html_report
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.input.readers import (
    InputReferences,
    SourceRecord,
    iter_references,
    reference_of,
)
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.store import Journal, RowOutcomeRecord, RowRecord

RESULTS_NAME = "results.csv"
REJECTS_NAME = "rejects.csv"
REPORT_NAME = "report.json"

#: Rows that get a line in rejects.csv.
_PROBLEMS = frozenset({RowStatus.REJECTED, RowStatus.FAILED})


def write_outputs(
    run_dir: Path,
    journal: Journal,
    request: RunRequest,
    summary: RunSummary,
    *,
    references: InputReferences | None = None,
) -> None:
    """Write results.csv, rejects.csv and report.json for the run in ``run_dir``.

    ``references`` are the input's, kept by this run's count of its rows: given, the input is
    not read again (it is not read at all when it changed during the run, see ``summary``).
    """
    get = _JournalCursor(journal).get
    spec = job_spec(request.kind)
    with (
        ResultsWriter(
            run_dir / RESULTS_NAME,
            reference_header=spec.reference_header,
            server_id_header=spec.server_id_header,
        ) as results,
        RejectsWriter(run_dir / REJECTS_NAME) as rejects,
    ):
        write = results.write_fields
        # A file rewritten during the run must not be re-read: its rows are not the job's.
        sources: Iterable[tuple[int, int | None, str]]
        if summary.input_changed:
            sources = _journal_rows(journal)
        elif references is not None:
            sources = references
        else:
            sources = _input_rows(request, spec.reference_columns)
        for row, line, reference in sources:
            values = get(row)  # RowOutcomeRecord's: row, state, server_id, ...
            if values is None:
                write(row, reference, None, _UNSENT_WORD, _UNSENT_NOTE)
                continue
            plain = _PLAIN.get(values[1])
            if plain is not None:  # the usual row: its status word and note, as they are
                write(row, reference, values[2], *plain)
                continue
            record = RowOutcomeRecord._make(values)
            status, note = _shown(record)
            write(row, reference, record.server_id, status.value, note)
            if status in _PROBLEMS:
                rejects.write(_reject_line(line, record))
    write_report_json(run_dir / REPORT_NAME, _report(journal, request, summary))
    write_html_report(
        run_dir / REPORT_HTML_NAME,
        journal,
        summary,
        request.settings.limits.write.rate.per_second,
    )


class _JournalCursor:
    """The journal's outcomes looked up by row number, for input rows read in file order.

    Input rows come in increasing row number and ``Journal.iter_outcome_values`` yields in
    row order, so one merged pass finds every record while holding one page of the journal,
    not the whole run (a million-row run would otherwise be a million records in memory). A
    lookup out of order falls back on ``Journal.outcome_of``. Plain tuples in
    ``RowOutcomeRecord``'s order: only the columns the files show (a few microseconds a row
    less than whole records).
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._records = journal.iter_outcome_values()
        self._next: tuple[Any, ...] | None = next(self._records, None)
        self._last = -1

    def get(self, row: int) -> tuple[Any, ...] | None:
        if row <= self._last:
            return self._journal.outcome_of(row)
        self._last = row
        found = self._next
        while found is not None and found[0] < row:
            found = next(self._records, None)
        self._next = found
        if found is not None and found[0] == row:
            return found
        return None


def _input_rows(
    request: RunRequest, reference_columns: tuple[str, ...]
) -> Iterator[tuple[int, int | None, str]]:
    """(row, line, reference) of every input record (``iter_references``)."""
    try:
        yield from iter_references(request.input_path, reference_columns, encoding=request.encoding)
    except Exception:
        return


def _journal_rows(journal: Journal) -> Iterator[tuple[int, int | None, str]]:
    """A row known from the journal alone: no line number and no reference to show."""
    for record in journal.iter_outcomes():
        yield record.row, None, ""


#: What each status means, as results.csv's ``note`` says it (a problem row's note starts
#: with its code and field). An operator reading "already_existed" next to "created" must not
#: have to guess which rows this job changed.
STATUS_NOTES: Final[Mapping[RowStatus, str]] = {
    RowStatus.CREATED: "created by this job",
    RowStatus.REPLAYED: "sent earlier in this job; the server replayed its answer, not a copy",
    RowStatus.ALREADY_EXISTED: "was on the server before this job; left unchanged",
    RowStatus.REJECTED: "fix the row and run the file again; done rows are not created twice",
    RowStatus.FAILED: "gave up for now; resume sends it again",
    RowStatus.PENDING: "not sent yet; resume sends it",
    RowStatus.IN_FLIGHT: "sent, outcome not yet known; resume settles it",
}


#: Words and notes of rows shown as they are stored, by stored word: every status but the
#: problems (their note names the row's code and field) and in flight (shown as pending).
_PLAIN: Final[Mapping[str, tuple[str, str]]] = {
    status.value: (status.value, note)
    for status, note in STATUS_NOTES.items()
    if status not in _PROBLEMS and status is not RowStatus.IN_FLIGHT
}
#: A row the journal has no record of: not sent yet.
_UNSENT_WORD: Final = RowStatus.PENDING.value
_UNSENT_NOTE: Final = STATUS_NOTES[RowStatus.PENDING]
_IN_FLIGHT_NOTE: Final = "sent, outcome not yet known; resume settles it"

#: A journal row as the files read it: the outcome columns (or the whole record, in tests).
_Record = RowOutcomeRecord | RowRecord


def _shown(record: _Record) -> tuple[RowStatus, str]:
    """The status results.csv shows for ``record`` and its note."""
    status = record.status
    if status is RowStatus.IN_FLIGHT:
        return RowStatus.PENDING, _IN_FLIGHT_NOTE
    note = STATUS_NOTES[status]
    if status in _PROBLEMS:
        detail = f"{record.code}: {record.field}" if record.field else str(record.code)
        note = f"{detail} ({note})"
    return status, note


def _result_line(
    source: SourceRecord, record: _Record | None, reference_columns: tuple[str, ...]
) -> ResultLine:
    """The results.csv line of one input record (what ``write_outputs`` writes for it)."""
    if record is None:
        status, note = RowStatus.PENDING, _UNSENT_NOTE
    else:
        status, note = _shown(record)
    return ResultLine(
        row=source.row,
        reference=reference_of(source.data, reference_columns),
        server_id=record.server_id if record is not None else None,
        status=status,
        note=note,
    )


def _reject_line(line: int | None, record: _Record) -> RejectLine:
    return RejectLine(
        row=record.row,
        line=line,
        field=record.field,
        code=record.code or record.status.value,
        reason=record.reason or "",
        request_id=record.request_id,
    )


def _report(journal: Journal, request: RunRequest, summary: RunSummary) -> dict[str, Any]:
    job = journal.job.summary()
    return {
        "job": {
            "job_id": job.job_id,
            "kind": job.kind,
            "input_path": job.input_path,
            "input_sha256": job.input_sha256,
            "base_url": job.base_url,
            "token_fingerprint": job.token_fingerprint,
            "created_at": _iso(job.created_at),
        },
        "configuration": job.config,
        "invocation": {
            "finished_at": _iso(time.time()),
            "elapsed_seconds": round(summary.elapsed, 3),
            "outcomes": {str(k): v for k, v in sorted(summary.counts.items())},
            "retries": summary.retries,
            "throttled_429": summary.throttled,
            "stopped": summary.stopped_json(),
            "exit_code": summary.exit_code,
        },
        "rows": {
            "in_file": summary.totals.rows,
            "valid": summary.totals.valid,
            "rejected_before_sending": summary.totals.rejected_locally,
            "journal": summary.journal_counts,
        },
        "total_amount": str(summary.totals.amount) if job_spec(request.kind).moves_money else None,
        "meta": journal.meta(),
        "messages": [redact_text(message) for message in summary.messages],
        "files": [RESULTS_NAME, REJECTS_NAME, REPORT_NAME, REPORT_HTML_NAME],
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
