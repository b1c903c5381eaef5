"""The combined display: each job's reporter feeds one board; plain lines are throttled per job
on an injected clock; the live board shows running jobs and an overall line; the table lists
every job; messages name their job."""

from __future__ import annotations

import io
import json
import logging

from rich.console import Console

from flexpay_batch.bureau.outcome import JobLabel, JobOutcome
from flexpay_batch.cli.bureau_progress import JsonBoard, PlainBoard, RichBoard
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import RunStart
from flexpay_batch.sim.testing import FakeClock

ACME = JobLabel(1, "acme", "onboard")
BETA = JobLabel(2, "beta", "payroll")


def test_plain_lines_per_job_at_most_once_per_interval() -> None:
    """Rows done within the interval show nothing; the first after it shows the job's line."""
    clock = FakeClock()
    stream = io.StringIO()
    board = PlainBoard([ACME, BETA], stream, interval=5.0, clock=clock)
    board.open()
    acme = board.reporter(ACME)
    acme.start(RunStart(total_rows=10, estimate_seconds=6.0, limit_per_second=2.0, done_rows=2))
    acme.row_done(RowStatus.CREATED)
    clock.advance(5.0)
    acme.row_done(RowStatus.REJECTED)
    acme.message("the server asked us to slow down", logging.WARNING)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "start: job 1 (acme, onboard): 10 rows (2 already settled), estimated 6s",
        "progress: acme onboard 4/10 · rejected 1 · failed 0 · 0/s of 2/s · eta 3s",
        "warning: job 1 (acme, onboard): the server asked us to slow down",
    ]


def test_each_end_and_the_overall_line() -> None:
    """A job's end shows its counts, then where the whole run stands."""
    clock = FakeClock()
    stream = io.StringIO()
    board = PlainBoard([ACME, BETA], stream, clock=clock)
    board.open()
    board.reporter(ACME).start(RunStart(total_rows=3, estimate_seconds=1.0, limit_per_second=1.0))
    clock.advance(65.0)
    board.ended(JobOutcome(ACME, "done", 0, counts={"created": 3}))
    assert stream.getvalue().splitlines()[-2:] == [
        "end: job 1 (acme, onboard): done: created 3, already existed 0, replayed 0, "
        "rejected 0, failed 0",
        "jobs: 1 done, 1 waiting · rows 0/? · 0 rows/s · 1m05s",
    ]


def test_the_live_board_and_the_table() -> None:
    """Running jobs get a line each, with an overall line; the end table has every job."""
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    board = RichBoard([ACME, BETA], console, clock=clock, auto_refresh=False)
    board.open()
    reporter = board.reporter(ACME)
    reporter.start(RunStart(total_rows=5, estimate_seconds=5.0, limit_per_second=1.0))
    reporter.row_done(RowStatus.CREATED)
    reporter.rate(1.0)
    with console.capture() as captured:
        console.print(board.render())
    assert captured.get().splitlines() == [
        "acme onboard 1/5 · rejected 0 · failed 0 · 1/s of 1/s · eta 4s",
        "jobs: 1 running, 1 waiting · rows 1/? · 1 rows/s · 0s",
    ]
    stopped = JobOutcome(
        BETA, "stopped", 3, run_dir=None, error="token revoked", hint="Get a new token."
    )
    board.close([JobOutcome(ACME, "done", 0, counts={"created": 5}), stopped])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Bureau run" in text
    assert "acme" in text
    assert "stopped (3)" in text
    assert "job 2 (beta, payroll): token revoked\n  Get a new token." in text


def test_json_lines_name_the_job_of_each_event() -> None:
    """--json-logs: start, throttled progress, a job's message and its end, each with the job;
    a message is redacted like any other."""
    clock = FakeClock()
    stream = io.StringIO()
    board = JsonBoard([ACME, BETA], stream, interval=1.0, clock=clock, wall_clock=lambda: 0.0)
    board.open()
    acme = board.reporter(ACME)
    acme.start(RunStart(total_rows=4, estimate_seconds=2.0, limit_per_second=2.0))
    acme.row_done(RowStatus.CREATED)
    clock.advance(1.0)
    acme.row_done(RowStatus.FAILED)
    acme.message("slow down", logging.WARNING)
    board.ended(JobOutcome(ACME, "incomplete", 1, counts={"created": 1, "failed": 1}))
    board.close([JobOutcome(ACME, "incomplete", 1), JobOutcome(BETA, "waiting", 130)])
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    job = {"number": 1, "org": "acme", "kind": "onboard"}
    assert [(e["event"], e.get("job")) for e in events] == [
        ("start", job),
        ("progress", job),
        ("message", job),
        ("end", job),
        ("finish", None),
    ]
    assert events[0]["ts"] == "1970-01-01T00:00:00.000Z"
    assert (events[1]["done"], events[1]["failed"]) == (2, 1)
    assert events[2]["message"] == "slow down"
    assert events[3]["state"] == "incomplete"
    assert events[4]["jobs"] == {"1": 1, "2": 130}
