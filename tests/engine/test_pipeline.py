"""``pipeline.run_pipeline``: bounded read-ahead, fatal errors, graceful stop and signals.

The rows are plain integers and ``work`` is a test double controlled with anyio events, so
each test decides exactly which rows are in flight when something happens. Time-based
behaviour (the grace period) runs on looptime's fake clock.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import anyio
import pytest

from flexpay_batch.core import errors
from flexpay_batch.engine.pipeline import READ_BATCH, StopControl, run_pipeline
from tests.engine.helpers import NeverFinishing, beside


class Source:
    """An iterator of ``count`` rows that counts how many were read from it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for row in range(self.count):
            self.read += 1
            yield row


class Recorder:
    """The sink: every recorded result, in order."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    async def __call__(self, result: int) -> None:
        self.rows.append(result)


@pytest.mark.parametrize(("workers", "buffer"), [(1, 1), (2, 5), (4, 16), (3, 600)])
async def test_the_reader_never_runs_more_than_buffer_rows_ahead(workers: int, buffer: int) -> None:
    """At every moment, rows read from the source but not yet taken by a worker <= buffer."""
    source = Source(buffer * 3 + 700)
    taken = 0
    ahead: list[int] = []

    async def work(row: int) -> int:
        nonlocal taken
        taken += 1
        ahead.append(source.read - taken)
        for _ in range(3):
            await anyio.sleep(0)  # let the reader run as far as it is allowed to
        ahead.append(source.read - taken)
        return row

    sink = Recorder()
    stats = await run_pipeline(
        iter(source), work, sink, workers=workers, stop=StopControl(), buffer=buffer
    )
    assert sorted(sink.rows) == list(range(source.count))
    assert (stats.produced, stats.processed, stats.recorded) == (source.count,) * 3
    assert max(ahead) <= buffer
    assert max(ahead) >= min(buffer, READ_BATCH) // 2  # and it does read ahead


async def test_the_default_buffer_is_bounded_too() -> None:
    """Without ``buffer`` the read-ahead is still a constant, whatever the file's length."""
    source = Source(5000)
    taken = 0
    worst = 0

    async def work(row: int) -> int:
        nonlocal taken, worst
        taken += 1
        await anyio.sleep(0)
        worst = max(worst, source.read - taken)
        return row

    await run_pipeline(iter(source), work, Recorder(), workers=4, stop=StopControl())
    assert worst <= max(8, READ_BATCH)


async def test_fatal_error_stops_the_run_and_in_flight_rows_are_recorded() -> None:
    """A worker raising AuthenticationFailed stops the run: rows already in flight on other
    workers finish and are recorded, no new row starts, and the error is re-raised."""
    release = anyio.Event()
    started: list[int] = []
    in_flight = 0
    all_busy = anyio.Event()

    async def work(row: int) -> int:
        nonlocal in_flight
        started.append(row)
        in_flight += 1
        if in_flight == 4:
            all_busy.set()
        if row == 3:
            await all_busy.wait()
            raise errors.AuthenticationFailed("the server rejected the token", status=401)
        await release.wait()
        return row

    stop = StopControl()
    sink = Recorder()

    async def release_after_stop() -> None:
        await stop.wait()
        await anyio.sleep(0.01)
        release.set()

    with pytest.raises(errors.AuthenticationFailed):
        await beside(
            release_after_stop,
            run_pipeline(iter(range(1000)), work, sink, workers=4, stop=stop, buffer=8),
        )
    assert sorted(started) == [0, 1, 2, 3]
    assert sorted(sink.rows) == [0, 1, 2]
    assert isinstance(stop.reason, errors.AuthenticationFailed)


async def test_a_row_level_result_does_not_stop_the_run() -> None:
    """``work`` returning normally for every row (rejections are results) processes them all."""
    sink = Recorder()
    stats = await run_pipeline(
        iter(range(50)), lambda row: _identity(row), sink, workers=3, stop=StopControl()
    )
    assert stats.recorded == 50


async def _identity(row: int) -> int:
    await anyio.sleep(0)
    return row


@pytest.mark.looptime
async def test_graceful_stop_waits_for_in_flight_rows_within_grace() -> None:
    """StopControl.request: no new row starts; rows in flight that finish within the grace
    period are recorded; the stop reason is raised."""
    stop = StopControl()
    started: list[int] = []

    async def work(row: int) -> int:
        started.append(row)
        if len(started) == 3:
            stop.request(errors.RunInterrupted("stopped by SIGTERM"))
        await anyio.sleep(5.0)  # in flight for 5 s of loop time
        return row

    sink = Recorder()
    with pytest.raises(errors.RunInterrupted):
        await run_pipeline(iter(range(100)), work, sink, workers=3, stop=stop, grace=30.0)
    assert sorted(started) == [0, 1, 2]
    assert sorted(sink.rows) == [0, 1, 2]


@pytest.mark.looptime
async def test_rows_still_in_flight_when_grace_ends_are_cancelled_unrecorded() -> None:
    """A row that outlives the grace period is cancelled (left unsettled for resume) and the
    run still ends, after about ``grace`` seconds of loop time, with the stop reason."""
    stop = StopControl()
    cancelled: list[int] = []

    async def work(row: int) -> int:
        if row == 1:
            stop.request(errors.RunInterrupted("stopped by SIGINT"))
        try:
            await anyio.sleep(1.0 if row == 0 else 3600.0)
        except anyio.get_cancelled_exc_class():
            cancelled.append(row)
            raise
        return row

    sink = Recorder()
    began = anyio.current_time()
    with pytest.raises(errors.RunInterrupted):
        await run_pipeline(iter(range(10)), work, sink, workers=2, stop=stop, grace=10.0)
    assert sink.rows == [0]
    assert cancelled == [1]
    assert 10.0 <= anyio.current_time() - began < 11.0


@pytest.mark.looptime
async def test_recording_is_never_cut_off_by_the_grace_period() -> None:
    """An outcome already produced is recorded even if the sink is slow past the grace end."""
    stop = StopControl()
    sink_rows: list[int] = []

    async def work(row: int) -> int:
        if row == 0:
            stop.request(errors.RunInterrupted("stop"))
        return row

    async def slow_sink(result: int) -> None:
        await anyio.sleep(5.0)
        sink_rows.append(result)

    with pytest.raises(errors.RunInterrupted):
        await run_pipeline(iter(range(5)), work, slow_sink, workers=1, stop=stop, grace=1.0)
    assert sink_rows == [0]


def test_invalid_sizes_are_refused() -> None:
    """Zero workers or an empty buffer are programming errors, refused up front."""
    with pytest.raises(ValueError, match="workers"):
        anyio.run(_pipeline_with, 0, None)
    with pytest.raises(ValueError, match="buffer"):
        anyio.run(_pipeline_with, 1, 0)


async def _pipeline_with(workers: int, buffer: int | None) -> None:
    await run_pipeline(
        iter(range(3)), _identity, Recorder(), workers=workers, stop=StopControl(), buffer=buffer
    )


async def test_sigint_stops_taking_rows_and_settles_those_in_flight() -> None:
    """The first SIGINT makes the run stop gracefully: rows in flight are recorded, the rest
    never start, and RunInterrupted (exit 130, resumable) is raised."""
    release = anyio.Event()
    started: list[int] = []
    busy = anyio.Event()
    stop = StopControl()

    async def work(row: int) -> int:
        started.append(row)
        if len(started) == 2:
            busy.set()
        await release.wait()
        return row

    async def interrupt() -> None:
        await busy.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
        release.set()

    sink = Recorder()
    with anyio.fail_after(10), pytest.raises(errors.RunInterrupted) as caught:
        await beside(
            interrupt,
            run_pipeline(iter(range(100)), work, sink, workers=2, stop=stop, handle_signals=True),
        )
    assert "SIGINT" in str(caught.value)
    assert caught.value.exit_code == 130
    assert sorted(started) == [0, 1]
    assert sorted(sink.rows) == [0, 1]


async def test_second_sigint_cancels_at_once() -> None:
    """A second SIGINT does not wait for the grace period (endless here): the run ends at once,
    interrupted, with nothing recorded."""
    stop = StopControl()
    in_flight = NeverFinishing()

    async def interrupt_twice() -> None:
        await in_flight.started.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
        os.kill(os.getpid(), signal.SIGINT)

    with anyio.fail_after(10), pytest.raises(errors.RunInterrupted):
        await beside(
            interrupt_twice, in_flight.pipeline(10, workers=1, stop=stop, handle_signals=True)
        )


async def test_a_child_stop_follows_its_parent_but_not_the_other_way() -> None:
    """A host's stop reaches every run's child; a run's own fatal error stops that run alone."""
    host = StopControl()
    acme, beta = host.child(), host.child()
    acme.request(errors.AuthenticationFailed("token revoked"))
    assert acme.requested
    assert not host.requested
    assert not beta.requested
    interrupted = errors.RunInterrupted("stopped by SIGTERM")
    host.request(interrupted)
    assert beta.reason is interrupted
    assert isinstance(acme.reason, errors.AuthenticationFailed)  # the first reason wins
    assert host.child().reason is interrupted  # a run begun after the stop is stopped too


async def test_a_stop_at_once_cancels_requests_in_flight() -> None:
    """request(at_once=True) after a graceful stop: the pipeline stops now (grace infinite)
    with the second reason; a run's own fatal error is not replaced by it."""
    host = StopControl()
    stop, failed = host.child(), host.child()
    failed.request(errors.AuthenticationFailed("token revoked"))
    in_flight = NeverFinishing()

    async def stop_twice() -> None:
        await in_flight.started.wait()
        host.request(errors.RunInterrupted("stopped by SIGTERM"))
        await anyio.sleep(0)
        host.request(errors.RunInterrupted("stopped by a second SIGTERM"), at_once=True)

    # fail_after is a hang guard, not a speed claim: grace is infinite.
    with anyio.fail_after(10), pytest.raises(errors.RunInterrupted, match="second"):
        await beside(stop_twice, in_flight.pipeline(5, workers=2, stop=stop))
    assert isinstance(failed.reason, errors.AuthenticationFailed)
