"""Progress reporters: throttled plain lines, JSON lines, the rich bar, and the chooser."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from rich.console import Console

from flexpay_batch.cli.progress import (
    JsonReporter,
    PlainReporter,
    RichReporter,
    banner_printer,
    make_reporter,
)
from flexpay_batch.cli.progress_base import estimate_eta
from flexpay_batch.core.formatting import format_duration, format_rate
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import RunStart
from flexpay_batch.sim.testing import FakeClock


class TtyStringIO(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


class BrokenStream(io.StringIO):
    """A stream whose reader went away (a closed pipe); counts the writes it refused."""

    def __init__(self, *, tty: bool = False) -> None:
        super().__init__()
        self.refused = 0
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        self.refused += 1
        raise BrokenPipeError("reader gone")


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("remaining", "rate", "limit", "expected"),
    [
        (100, 2.0, 1.0, 50.0),
        (100, 0.0, 4.0, 25.0),
        (0, 2.0, 1.0, 0.0),
        (-3, 2.0, 1.0, 0.0),
        (None, 2.0, 1.0, None),
        (10, 0.0, 0.0, None),
    ],
)
def test_estimate_eta(remaining: int | None, rate: float, limit: float, expected: float) -> None:
    """The ETA uses the observed rate, falls back to the limit, and is None when unknowable."""
    assert estimate_eta(remaining, rate, limit) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "?"), (0, "0s"), (7.4, "7s"), (59.6, "1m00s"), (232, "3m52s"), (3725, "1h02m")],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    """Durations read as seconds, minutes and seconds, or hours and minutes."""
    assert format_duration(seconds) == expected


def test_plain_reporter_throttles_progress_lines() -> None:
    """Progress lines appear at most once per interval, plus once when the last row is done."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=5.0, clock=clock)
    reporter.start(RunStart(total_rows=10, estimate_seconds=6.0, limit_per_second=100 / 60))
    reporter.rate(1.0)
    for _ in range(4):
        clock.advance(1.0)
        reporter.row_done("created")
    assert lines(stream) == ["start: 10 rows, limit 100 rows/min, estimated 6s"]
    clock.advance(1.0)
    reporter.row_done("created")
    assert len(lines(stream)) == 2
    assert lines(stream)[1] == (
        "progress: 5/10 · rejected 0 · failed 0 · retrying 0 · 60/min of 100/min · eta 5s"
    )
    for _ in range(4):
        reporter.row_done("created")
    assert len(lines(stream)) == 2
    reporter.row_done(RowStatus.REJECTED)
    assert lines(stream)[-1].startswith("progress: 10/10 · rejected 1 ·")


def test_plain_reporter_messages_and_finish() -> None:
    """Messages print at once with their level, redacted; the finish line gives the summary."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, clock=clock, redact=lambda t: t.replace("sekrit", "[X]"))
    reporter.start(RunStart(total_rows=None, estimate_seconds=None, limit_per_second=2.0))
    reporter.message("token sekrit rejected", logging.ERROR)
    reporter.message("slowing down", logging.WARNING)
    clock.advance(302)
    reporter.finish({"created": 3, "rejected": 1})
    reporter.close()
    assert lines(stream) == [
        "start: an unknown number of rows, limit 2 rows/s, estimated ?",
        "error: token [X] rejected",
        "warning: slowing down",
        "finished in 5m02s (average 0/s): created 3, already existed 0, replayed 0, "
        "rejected 1, failed 0",
    ]


def test_retrying_count_never_goes_negative() -> None:
    """An unmatched -1 leaves the retrying count at zero."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=0.0, clock=clock)
    reporter.start(RunStart(total_rows=3, estimate_seconds=None, limit_per_second=1.0))
    reporter.retrying(+2)
    reporter.retrying(-3)
    assert "retrying 0" in lines(stream)[-1]


def test_json_reporter_lines_parse() -> None:
    """Every JSON line parses and carries a UTC timestamp, the event and its counts."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = JsonReporter(stream, interval=1.0, clock=clock, wall_clock=lambda: 1773403200.5)
    reporter.start(RunStart(total_rows=3, estimate_seconds=float("inf"), limit_per_second=2.0))
    reporter.row_done("created")
    clock.advance(1.0)
    reporter.retrying(1)
    reporter.row_done("already_existed")
    reporter.message("hello", logging.WARNING)
    reporter.row_done("failed")
    clock.advance(2.0)
    reporter.finish({"created": 1, "already_existed": 1, "failed": 1})
    records = [json.loads(line) for line in lines(stream)]
    assert [r["event"] for r in records] == [
        "start",
        "progress",
        "message",
        "progress",
        "finish",
    ]
    assert {r["ts"] for r in records} == {"2026-03-13T12:00:00.500Z"}
    assert records[0]["estimate_seconds"] is None
    assert records[1]["retrying"] == 1
    assert records[2] == {
        "ts": "2026-03-13T12:00:00.500Z",
        "event": "message",
        "level": "warning",
        "message": "hello",
    }
    assert records[3]["done"] == 3
    assert records[3]["failed"] == 1
    assert records[3]["by_status"] == {"created": 1, "already_existed": 1, "failed": 1}
    assert records[4]["summary"] == {"created": 1, "already_existed": 1, "failed": 1}
    assert records[4]["elapsed_seconds"] == 3.0


def test_rich_reporter_draws_bar_and_summary() -> None:
    """The rich reporter shows counts while running and a summary table at the end."""
    clock, stream = FakeClock(), io.StringIO()
    console = Console(file=stream, force_terminal=True, width=140, color_system=None)
    reporter = RichReporter(console, clock=clock, auto_refresh=False)
    reporter.start(RunStart(total_rows=4, estimate_seconds=120.0, limit_per_second=2.0))
    reporter.row_done("created")
    reporter.retrying(1)
    reporter.rate(1.5)
    reporter.message("token [REDACTED] refused", logging.ERROR)
    reporter.row_done(RowStatus.REJECTED)
    output_while_running = stream.getvalue()
    reporter.finish({"created": 3, "rejected": 1})
    reporter.close()
    output = stream.getvalue()
    assert "Starting: 4 rows, limit 2 rows/s, estimated 2m00s" in output
    assert "2/4 · rejected 1 · failed 0 · retrying 1 · 1.5/s of 2/s" in output_while_running
    assert "error: token [REDACTED] refused" in output
    assert "Summary" in output
    for word in ("created", "rejected", "total"):
        assert word in output.split("Summary", 1)[1]


def test_make_reporter_chooses_by_flag_and_terminal() -> None:
    """JSON when asked, rich on a terminal, plain lines otherwise."""
    assert isinstance(make_reporter(True, TtyStringIO()), JsonReporter)
    assert isinstance(make_reporter(False, io.StringIO()), PlainReporter)
    rich_reporter = make_reporter(False, TtyStringIO())
    assert isinstance(rich_reporter, RichReporter)
    rich_reporter.close()


@pytest.mark.parametrize(
    ("json_logs", "tty", "kind"),
    [
        (False, False, PlainReporter),
        (True, False, JsonReporter),
        (False, True, RichReporter),
    ],
    ids=["plain", "json", "rich"],
)
def test_closed_stream_does_not_break_the_run(json_logs: bool, tty: bool, kind: type) -> None:
    """Every reporter writing to a broken pipe swallows the error instead of raising."""
    stream = BrokenStream(tty=tty)
    reporter = make_reporter(json_logs, stream, clock=FakeClock())
    assert isinstance(reporter, kind)
    reporter.start(RunStart(total_rows=1, estimate_seconds=1.0, limit_per_second=1.0))
    reporter.row_done("created")
    reporter.message("still fine")
    reporter.finish({"created": 1})
    reporter.close()  # none of these raised BrokenPipeError ...
    assert stream.refused > 0  # ... although the reporter did try to write to the pipe


@pytest.mark.parametrize(
    ("limit_per_second", "expected"),
    [
        (100 / 60, "100/min"),
        (100 / 3600, "100/h"),
        (1000.0, "1000/s"),
        (2.0, "2/s"),
        (0.5, "30/min"),
    ],
)
def test_rates_are_shown_in_the_limits_own_unit(limit_per_second: float, expected: str) -> None:
    """A 100/min limit reads 100/min (not 1.67/s), 100/h reads 100/h (not 0.03/s)."""
    assert format_rate(limit_per_second, limit_per_second) == f"{expected} of {expected}"


def test_the_final_line_shows_the_runs_average_rate_not_the_last_window() -> None:
    """Finished: the average over the run (60 rows in 60 s at 100/min is 60/min), not 0/s."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=1000.0, clock=clock)
    reporter.start(RunStart(total_rows=60, estimate_seconds=36.0, limit_per_second=100 / 60))
    for _ in range(60):
        clock.advance(1.0)
        reporter.row_done(RowStatus.CREATED)
    reporter.rate(0.0)
    reporter.finish({"created": 50, "already_existed": 10})
    assert lines(stream)[-1] == (
        "finished in 1m00s (average 60/min): created 50, already existed 10, replayed 0, "
        "rejected 0, failed 0"
    )


def test_retrying_counts_rows_retrying_now() -> None:
    """retrying(+1) and retrying(-1) pair up: after both, nothing is retrying."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=0.0, clock=clock)
    reporter.start(RunStart(total_rows=3, estimate_seconds=None, limit_per_second=1.0))
    reporter.retrying(+1)
    reporter.retrying(+1)
    assert "retrying 2" in lines(stream)[-1]
    reporter.retrying(-1)
    reporter.retrying(-1)
    assert "retrying 0" in lines(stream)[-1]


def test_the_last_rows_say_finishing_not_eta_0s() -> None:
    """With rows left but an ETA under a second, the line says what is happening."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=0.0, clock=clock)
    reporter.start(RunStart(total_rows=500, estimate_seconds=None, limit_per_second=100.0))
    reporter.rate(100.0)
    for _ in range(499):
        reporter.row_done(RowStatus.CREATED)
    assert lines(stream)[-1].endswith("· finishing 1"), lines(stream)[-1]
    reporter.row_done(RowStatus.CREATED)
    assert lines(stream)[-1].endswith("· done"), lines(stream)[-1]


def test_a_resume_starts_from_the_rows_already_settled() -> None:
    """done_rows counts toward done and the ETA, not toward this invocation's average."""
    clock, stream = FakeClock(), io.StringIO()
    reporter = PlainReporter(stream, interval=0.0, clock=clock)
    reporter.start(
        RunStart(total_rows=500, estimate_seconds=None, limit_per_second=10.0, done_rows=431)
    )
    assert lines(stream)[0] == "start: 500 rows (431 already settled), limit 10 rows/s, estimated ?"
    clock.advance(1.0)
    reporter.row_done(RowStatus.CREATED)
    assert lines(stream)[-1].startswith("progress: 432/500 ·")
    reporter.finish({"created": 432})
    assert "(average 1/s)" in lines(stream)[-1]


@pytest.mark.parametrize("width", [60, 100])
def test_rich_progress_keeps_counts_and_eta_visible(width: int) -> None:
    """At 60 or 100 columns the counts, the rate and the ETA are all on screen."""
    clock, stream = FakeClock(), io.StringIO()
    console = Console(file=stream, force_terminal=True, width=width, color_system=None)
    reporter = RichReporter(console, clock=clock, auto_refresh=False)
    reporter.start(
        RunStart(
            total_rows=50000, estimate_seconds=3600.0, limit_per_second=100 / 60, done_rows=12000
        )
    )
    reporter.rate(1.6)
    for _ in range(300):
        reporter.row_done(RowStatus.REJECTED)
    reporter.retrying(2)
    reporter.close()
    shown = stream.getvalue().rsplit("\r", 1)[-1]
    assert "12300/50000" in shown
    assert "rej 300" in shown or "rejected 300" in shown
    assert "retry" in shown
    assert "96/min" in shown
    assert "eta 6h" in shown
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert all(len(line) <= width for line in re.split(r"[\r\n]", drawn)), drawn


def test_rich_broken_pipe_leaves_stdout_alone(capfd: pytest.CaptureFixture[str]) -> None:
    """rich's default closes stdout (dup2 /dev/null) on a broken pipe; ours goes quiet only."""
    reporter = make_reporter(False, BrokenStream(tty=True), clock=FakeClock())
    reporter.start(RunStart(total_rows=1, estimate_seconds=1.0, limit_per_second=1.0))
    reporter.finish({"created": 1})
    reporter.close()
    print("stdout still works")
    assert "stdout still works" in capfd.readouterr().out


@pytest.mark.parametrize("json_logs", [False, True])
def test_the_sandbox_banner_is_a_line_or_a_json_message(json_logs: bool) -> None:
    """What the engine announces prints as ``*** text ***``; under --json-logs it is a
    warning ``message`` event like the reporter's, so every line of the stream parses."""
    stream = io.StringIO()
    show = banner_printer(json_logs, stream, wall_clock=lambda: 1_700_000_000.0)
    show("SANDBOX: running against an embedded FlexPay simulator at https://127.0.0.1:1/v1/.")
    show("SANDBOX: seeded 3 employees from people.csv")
    lines = stream.getvalue().splitlines()
    if not json_logs:
        assert lines == [
            "*** SANDBOX: running against an embedded FlexPay simulator at "
            "https://127.0.0.1:1/v1/. ***",
            "*** SANDBOX: seeded 3 employees from people.csv ***",
        ]
        return
    records = [json.loads(line) for line in lines]
    assert records[1] == {
        "ts": "2023-11-14T22:13:20.000Z",
        "event": "message",
        "level": "warning",
        "message": "SANDBOX: seeded 3 employees from people.csv",
    }


def test_a_closed_stream_silences_the_banner() -> None:
    """A reader gone from stderr does not stop the command at its banner."""
    stream = BrokenStream()
    banner_printer(False, stream)("SANDBOX: hello")
    assert stream.refused == 1
