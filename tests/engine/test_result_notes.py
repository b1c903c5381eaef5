"""results.csv's note explains every status (it used to be blank for created, replayed and
already existed, so "done 50" could hide that nothing was created)."""

from __future__ import annotations

from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.report import STATUS_NOTES, _result_line
from flexpay_batch.input.readers import SourceRecord
from flexpay_batch.journal.store import RowRecord


def _record(status: RowStatus, **changes: object) -> RowRecord:
    values: dict[str, object] = {
        "row": 2,
        "row_key": "k",
        "body_hash": None,
        "status": status,
        "attempts": 1,
        "idempotency_key": None,
        "first_sent_at": None,
        "server_id": "emp_1",
        "request_id": None,
        "field": None,
        "code": None,
        "reason": None,
        "updated_at": 0.0,
    }
    values.update(changes)
    return RowRecord(**values)  # type: ignore[arg-type]


SOURCE = SourceRecord(row=2, line=2, data={"external_id": "E1"}, problem=None)


def test_every_status_has_a_note_and_they_differ() -> None:
    """Each status says what it means, in its own words."""
    assert set(STATUS_NOTES) == set(RowStatus)
    assert len(set(STATUS_NOTES.values())) == len(RowStatus)


def test_created_already_existed_and_replayed_are_told_apart() -> None:
    """The three ways of succeeding each carry their own note."""
    notes = {
        status: _result_line(SOURCE, _record(status), ("external_id",)).note
        for status in (RowStatus.CREATED, RowStatus.ALREADY_EXISTED, RowStatus.REPLAYED)
    }
    assert notes[RowStatus.CREATED] == "created by this job"
    assert "before this job" in notes[RowStatus.ALREADY_EXISTED]
    assert "replayed" in notes[RowStatus.REPLAYED]


def test_a_rejected_rows_note_starts_with_its_code_and_field() -> None:
    """The code and field stay first (scripts split on them); the explanation follows."""
    record = _record(RowStatus.REJECTED, code="invalid_email", field="email", server_id=None)
    note = _result_line(SOURCE, record, ("external_id",)).note
    assert note.startswith("invalid_email: email (")
    assert "fix the row" in note
