"""What ``enqueue --wait`` shows (``cli.queue_wait``): a live table on a terminal, throttled
plain lines elsewhere; the clock is injected, the terminal a rich console recording to text."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from rich.console import Console

from flexpay_batch.bureau.queue import JobView
from flexpay_batch.cli.queue_wait import (
    LineDisplay,
    LiveDisplay,
    jobs_table,
    make_wait_display,
    progress_line,
)


def view(job_id: str, state: str, done: int, total: int | None = 10, **fields: Any) -> JobView:
    values: dict[str, Any] = {
        "id": job_id,
        "org": job_id.split("-")[0],
        "kind": "onboard",
        "state": state,
        "rows_done": done,
        "rows_total": total,
        "rejected": 0,
        "failed": 0,
        "worker": "host-1" if state == "running" else None,
        "updated": None,
        "attempts": 1,
        "exit_code": None,
        "stopped": None,
        "message": None,
    }
    return JobView(**(values | fields))


IDS = ["acme-onboard-1", "beta-onboard-2", "chi-onboard-3"]


def test_the_progress_line_adds_up_every_job() -> None:
    views = [
        view(IDS[0], "done", 10, rejected=2),
        view(IDS[1], "running", 4, total=None),
        None,
    ]
    assert progress_line(views) == (
        "14/? rows · rejected 2 · failed 0 · jobs: done 1 · gone 1 · running 1"
    )


def test_plain_lines_are_throttled_but_the_last_one_always_shows() -> None:
    """A changed line at most every interval; the end at once; an unchanged one never."""
    now = [0.0]
    stream = io.StringIO()
    display = LineDisplay(stream, interval=5.0, clock=lambda: now[0])
    display.show([view(IDS[0], "running", 1)], ended=False)  # first: shown
    now[0] = 1.0
    display.show([view(IDS[0], "running", 2)], ended=False)  # too soon
    now[0] = 6.0
    display.show([view(IDS[0], "running", 3)], ended=False)  # due
    display.show([view(IDS[0], "running", 3)], ended=False)  # unchanged
    now[0] = 6.5
    display.show([view(IDS[0], "done", 10)], ended=True)  # the end: at once
    display.say("the job queue answers again")
    lines = stream.getvalue().splitlines()
    assert [line.split(" rows")[0] for line in lines[:3]] == [
        "progress: 1/10",
        "progress: 3/10",
        "progress: 10/10",
    ]
    assert lines[3] == "the job queue answers again"
    assert len(lines) == 4


def _recording_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, record=True)


def test_the_live_table_shows_one_row_per_job_and_the_total() -> None:
    console = _recording_console()
    console.print(
        jobs_table(
            IDS,
            [
                view(IDS[0], "done", 10),
                view(IDS[1], "running", 4, worker="host-7"),
                None,
            ],
        )
    )
    text = console.export_text()
    header, *rows = [line for line in text.splitlines() if line.strip()]
    assert header.split() == ["job", "org", "kind", "state", "rows", "rejected", "failed", "worker"]
    assert rows[0].split() == [IDS[0], "acme", "onboard", "done", "10/10", "0", "0", "-"]
    assert rows[1].split() == [IDS[1], "beta", "onboard", "running", "4/10", "0", "0", "host-7"]
    assert rows[2].split() == [IDS[2], "gone"]
    assert "14/20 rows · rejected 0 · failed 0 · jobs: done 1 · gone 1 · running 1" in text


def test_the_live_display_ends_with_the_last_table_and_the_queues_news() -> None:
    console = _recording_console()
    display = LiveDisplay(IDS[:1], console)
    display.show([view(IDS[0], "running", 3)], ended=False)
    display.say("the job queue at 127.0.0.1:1 does not answer (ConnectionError)")
    display.show([view(IDS[0], "done", 10)], ended=True)
    display.close()
    display.close()  # twice is harmless
    text = console.export_text()
    assert "does not answer" in text
    final = text[text.rindex("job ") :]
    assert "done" in final
    assert "10/10" in final


def test_a_closed_terminal_does_not_stop_the_wait() -> None:
    """The terminal went away: drawing fails quietly, the wait (and its exit code) go on."""
    stream = io.StringIO()
    display = LiveDisplay(IDS[:1], Console(file=stream, force_terminal=True))
    stream.close()
    display.show([view(IDS[0], "running", 3)], ended=False)
    display.say("the job queue answers again")
    display.close()


def test_a_terminal_gets_the_live_table_and_a_pipe_plain_lines() -> None:
    controller, terminal = os.openpty()
    try:
        with os.fdopen(terminal, "w", closefd=False) as tty:
            display = make_wait_display(IDS, tty)
            assert isinstance(display, LiveDisplay)
            display.close()
    finally:
        os.close(controller)
        os.close(terminal)
    assert isinstance(make_wait_display(IDS, io.StringIO()), LineDisplay)


@pytest.mark.parametrize("closed", [True, False])
def test_a_stream_without_a_terminal_answer_gets_plain_lines(closed: bool) -> None:
    stream = io.StringIO()
    if closed:
        stream.close()
    assert isinstance(make_wait_display(IDS, stream), LineDisplay)
