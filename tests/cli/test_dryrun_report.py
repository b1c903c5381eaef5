"""How the command line prints a dry run's result: byte for byte the lines it always printed,
and under --json-logs every stderr line a JSON object."""

from __future__ import annotations

import io
import json

import pytest

from flexpay_batch.cli.dryrun import dry_run_json, write_dry_run
from flexpay_batch.engine.dryrun import DryRunResult
from flexpay_batch.input.validation import Rejection
from flexpay_batch.jobs.base import FinishReport


def _result(rejected: int, shown: int) -> DryRunResult:
    return DryRunResult(
        source="pay.csv",
        kind="payroll",
        preflight=("would create the period's regular run",),
        rows=10,
        requests={"POST /payroll_runs/{id}/items": 10 - rejected - 1},
        unchanged=1,
        rejected=rejected,
        rejections=tuple(
            Rejection(row, row + 1, "gross_amount", "bad_amount", "must be positive")
            for row in range(2, 2 + shown)
        ),
        finish=FinishReport(("would be left in draft: not every row would be accepted",), True),
    )


def _write(result: DryRunResult, *, json_logs: bool) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    write_dry_run(result, out=out, err=err, json_logs=json_logs, wall_clock=lambda: 0.0)
    return out.getvalue(), err.getvalue()


def test_the_plain_report() -> None:
    """Pre-flight, the counts line and the finish on stdout; the rows, then how many more, on
    stderr; exit 1 for rejected rows."""
    result = _result(rejected=3, shown=2)
    out, err = _write(result, json_logs=False)
    assert out == (
        "would create the period's regular run\n"
        "dry run, nothing sent: pay.csv (payroll) 10 rows: would send "
        "6 x POST /payroll_runs/{id}/items, 1 already on the server as in the file, "
        "would reject 3\n"
        "would be left in draft: not every row would be accepted\n"
    )
    assert err == (
        "pay.csv row 2 (line 3), field gross_amount: must be positive\n"
        "pay.csv row 3 (line 4), field gross_amount: must be positive\n"
        "... and 1 more rejected rows\n"
    )
    assert result.exit_code == 1


@pytest.mark.parametrize("shown", [0, 2])
def test_json_logs_rejections_are_json_lines(shown: int) -> None:
    """--json-logs: a ``rejected`` event per row shown, a warning for the rest; stdout as
    without it."""
    result = _result(rejected=3, shown=shown)
    out, err = _write(result, json_logs=True)
    assert out == _write(result, json_logs=False)[0]
    records = [json.loads(line) for line in err.splitlines()]
    assert [record["event"] for record in records] == ["rejected"] * shown + ["message"]
    if shown:
        assert records[0] == {
            "ts": "1970-01-01T00:00:00.000Z",
            "event": "rejected",
            "file": "pay.csv",
            "row": 2,
            "line": 3,
            "field": "gross_amount",
            "code": "bad_amount",
            "reason": "must be positive",
        }
    assert records[-1]["message"] == f"... and {3 - shown} more rejected rows"


def test_the_json_summary() -> None:
    """--json: what would be done as one object (the rows themselves stay on stderr)."""
    assert dry_run_json(_result(rejected=3, shown=2)) == {
        "dry_run": True,
        "file": "pay.csv",
        "kind": "payroll",
        "exit_code": 1,
        "rows": 10,
        "would_send": {"POST /payroll_runs/{id}/items": 6},
        "unchanged": 1,
        "rejected": 3,
        "before_rows": ["would create the period's regular run"],
        "finish": {
            "messages": ["would be left in draft: not every row would be accepted"],
            "incomplete": True,
        },
    }
