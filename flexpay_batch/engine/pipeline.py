"""Producer → bounded read-ahead → N workers, each recording its own outcomes, with a clean stop.

Usage::

    stop = StopControl()
    stats = await run_pipeline(rows, process_row, record_outcome, workers=8, stop=stop)

Backpressure comes from the bounded read-ahead: the producer (which reads and validates the
file in a worker thread, a batch at a time, so file I/O never blocks the event loop) can run
at most ``buffer`` rows ahead of the workers (the batch in its hands included), whatever the
file's size. It refills a batch at a time, once the workers have taken a batch's worth, so it
wakes once per batch, not once per row. Every task has an owner: the task group.

A worker records the outcome of its row itself, as soon as it has it (there is no separate
sink stage to hand it to): ``record`` is either a plain function, which cannot be interrupted,
or returns an awaitable (a coroutine function, or a plain function asking to wait, e.g. for
room in a buffer), which is awaited under a shield. Either way an outcome once produced is
recorded, whatever cancels the row's task.

Stopping: ``StopControl.request()`` (called on SIGINT/SIGTERM or by a worker that hit a fatal
error) makes the producer stop reading and the workers stop taking rows; requests already in
flight finish and are recorded, for at most ``grace`` seconds, after which they are cancelled
(their rows stay unsettled in the journal and are re-sent with the same key on resume). Rows
still in the buffer were never sent and stay pending.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from flexpay_batch.core import errors

W = TypeVar("W")
R = TypeVar("R")

#: Rows read and validated per hop to the reader thread.
READ_BATCH = 256

#: What a worker hands each outcome to: None once recorded, or an awaitable to await
#: (shielded) before the worker takes its next row.
Record = Callable[[R], Awaitable[None] | None]


class StopControl:
    """A shared "stop taking new rows" flag that remembers why the run stopped.

    A host of several runs (a bureau) gives each run a ``child()``: stopping the host stops
    every run, while a run's own fatal error (its token revoked) stops that run alone. The
    host's second Ctrl-C is ``request(reason, at_once=True)``: the pipelines cancel their
    requests in flight instead of letting them finish (their rows stay open; resume re-sends
    them under the same key), and still record what has arrived.
    """

    def __init__(self, on_stop: Callable[[BaseException], None] | None = None) -> None:
        self._event = anyio.Event()
        self._at_once = anyio.Event()
        self.reason: BaseException | None = None
        #: Told the first reason at once, so the operator sees "stopping…" before the
        #: requests in flight have finished (which may take a while).
        self._on_stop = on_stop
        self._children: list[StopControl] = []

    def child(self) -> StopControl:
        """A stop of its own that a request here also makes, but not the other way round."""
        child = StopControl()
        self._children.append(child)
        if self.reason is not None:
            child.request(self.reason, at_once=self._at_once.is_set())
        return child

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: BaseException, *, at_once: bool = False) -> None:
        """Ask every stage to stop; the first reason wins (later ones are echoes of it).

        ``at_once``: cancel the requests in flight too. Its reason replaces an earlier
        interruption's (which promised they could finish), not a run's own fatal error.
        """
        if self.reason is None or (at_once and isinstance(self.reason, errors.RunInterrupted)):
            first = self.reason is None
            self.reason = reason
            if first and self._on_stop is not None:
                self._on_stop(reason)
        self._event.set()
        if at_once:
            self._at_once.set()
        for child in self._children:
            child.request(reason, at_once=at_once)

    async def wait(self) -> None:
        await self._event.wait()

    async def wait_at_once(self) -> None:
        """Return once a stop ``at_once`` is requested."""
        await self._at_once.wait()


@dataclass(slots=True)
class PipelineStats:
    """Counts of rows that passed each stage in one run of the pipeline."""

    produced: int = 0
    processed: int = 0
    recorded: int = 0


class _ReadAhead(Generic[W]):
    """The rows read but not yet taken: a deque the producer refills a batch at a time.

    The producer reads a batch only while ``len(rows) <= low_water`` (``depth`` minus one
    batch), so rows read and not yet taken never exceed ``depth``. Waiting costs one event
    per wait, and only a side with nothing to do waits: a worker when no row is left, the
    producer when the read-ahead is full.
    """

    __slots__ = ("_has_room", "_has_rows", "done", "low_water", "rows")

    def __init__(self, low_water: int) -> None:
        self.rows: deque[W] = deque()
        self.low_water = low_water
        #: True once the producer has stopped (end of input, a stop or its failure).
        self.done = False
        self._has_rows: anyio.Event | None = None
        self._has_room: anyio.Event | None = None

    def has_room(self) -> bool:
        return len(self.rows) <= self.low_water

    def took(self) -> None:
        """A worker took a row (or stopped): wake the producer if a batch fits again."""
        if self._has_room is not None and len(self.rows) <= self.low_water:
            self._has_room.set()
            self._has_room = None

    def wake_workers(self) -> None:
        if self._has_rows is not None:
            self._has_rows.set()
            self._has_rows = None

    def wake_producer(self) -> None:
        if self._has_room is not None:
            self._has_room.set()
            self._has_room = None

    async def wait_rows(self) -> None:
        if self._has_rows is None:
            self._has_rows = anyio.Event()
        await self._has_rows.wait()

    async def wait_room(self) -> None:
        if self._has_room is None:
            self._has_room = anyio.Event()
        await self._has_room.wait()


@dataclass(slots=True)
class _Stages(Generic[W, R]):
    work: Callable[[W], Awaitable[R]]
    record: Record[R]
    stop: StopControl
    stats: PipelineStats
    ahead: _ReadAhead[W]


async def run_pipeline(
    rows: Iterator[W],
    work: Callable[[W], Awaitable[R]],
    record: Record[R],
    *,
    workers: int,
    stop: StopControl,
    buffer: int | None = None,
    grace: float = 30.0,
    handle_signals: bool = False,
    idle: Callable[[], Awaitable[None]] | None = None,
) -> PipelineStats:
    """Run every row of ``rows`` through ``work`` on ``workers`` tasks; ``record`` each result.

    ``rows`` is a plain (blocking) iterator; it is advanced in a worker thread. ``work`` must
    not raise for a row-level problem (it returns an outcome); an exception escaping ``work``
    stops the run: a ``FlexPayBatchError`` is re-raised after in-flight rows are recorded.
    ``record`` is called by the worker that produced the result (see the module docstring);
    several workers' calls may interleave when it awaits.
    Raises ``RunInterrupted`` if a signal stopped the run. ``idle`` (optional) returns once
    no request is on the wire: once a stop is requested and it holds, the workers are
    cancelled at once instead of after ``grace`` (a worker waiting out a server's pause at
    the limiter has nothing to finish).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    depth = buffer if buffer is not None else max(2 * workers, READ_BATCH)
    if depth < 1:
        raise ValueError("buffer must be at least 1")
    # The batch in the reader's hands counts against the buffer: rows read from the file but
    # not yet taken by a worker are at most (rows waiting + one batch) = ``depth``.
    read_batch = min(READ_BATCH, max(1, depth // 2))
    ahead: _ReadAhead[W] = _ReadAhead(depth - read_batch)
    stages = _Stages(work=work, record=record, stop=stop, stats=PipelineStats(), ahead=ahead)
    async with anyio.create_task_group() as outer:
        if handle_signals:
            outer.start_soon(_watch_signals, stop, outer)
        outer.start_soon(_cancel_at_once, stop, outer)
        async with anyio.create_task_group() as row_tasks:
            outer.start_soon(_enforce_grace, stop, grace, row_tasks.cancel_scope, idle)
            row_tasks.start_soon(_produce, rows, stages, read_batch)
            for _ in range(workers):
                row_tasks.start_soon(_work, stages)
        outer.cancel_scope.cancel()
    if stop.reason is not None:
        raise stop.reason
    return stages.stats


def _take_batch(rows: Iterator[W], size: int) -> list[W]:
    batch: list[W] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            break
    return batch


async def _produce(rows: Iterator[W], stages: _Stages[W, R], read_batch: int) -> None:
    ahead = stages.ahead
    try:
        while not stages.stop.requested:
            if not ahead.has_room():
                await ahead.wait_room()
                continue
            batch = await anyio.to_thread.run_sync(_take_batch, rows, read_batch)
            if not batch:
                return
            if stages.stop.requested:
                return
            ahead.rows.extend(batch)
            stages.stats.produced += len(batch)
            ahead.wake_workers()
    finally:
        ahead.done = True
        ahead.wake_workers()


async def _work(stages: _Stages[W, R]) -> None:
    ahead = stages.ahead
    rows = ahead.rows
    try:
        while True:
            if stages.stop.requested:
                return
            if not rows:
                if ahead.done:
                    return
                await ahead.wait_rows()
                continue
            row = rows.popleft()
            ahead.took()
            try:
                result = await stages.work(row)
            except errors.FlexPayBatchError as exc:
                stages.stop.request(exc)
                return
            stages.stats.processed += 1
            # No await between the result and its recording unless ``record`` asks for one,
            # and then shielded: a grace-period cancellation never loses an outcome we have.
            pending = stages.record(result)
            if pending is not None:
                with anyio.CancelScope(shield=True):
                    await pending
            stages.stats.recorded += 1
    finally:
        # A producer waiting for room must not wait on a worker that has stopped taking rows.
        ahead.wake_producer()


async def _cancel_at_once(stop: StopControl, outer: TaskGroup) -> None:
    """A stop ``at_once``: cancel the pipeline now, as a second Ctrl-C does."""
    await stop.wait_at_once()
    outer.cancel_scope.cancel()


async def _enforce_grace(
    stop: StopControl,
    grace: float,
    scope: anyio.CancelScope,
    idle: Callable[[], Awaitable[None]] | None,
) -> None:
    """Once a stop is requested, give in-flight requests ``grace`` seconds, then cancel; with
    ``idle``, cancel as soon as nothing is on the wire (rows not yet sent stay open)."""
    await stop.wait()
    if idle is None:
        if not math.isfinite(grace):
            return
        await anyio.sleep(grace)
    else:
        with anyio.move_on_after(grace):
            await idle()
    scope.cancel()


#: The signals that stop a run the way Ctrl-C does (SIGHUP: the terminal went away).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signal_receiver(*signals: signal.Signals) -> Iterator[AsyncIterator[int]]:
    """``anyio.open_signal_receiver`` that puts the previous handlers back when it closes.

    asyncio's ``remove_signal_handler`` resets a signal to its *default* action, so without
    this a SIGTERM or SIGHUP after the rows (the job's finish, the outputs) would kill the
    process silently, whatever handler ``engine.run`` had installed before.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in signals} if main else {}
    try:
        with anyio.open_signal_receiver(*signals) as received:
            yield received
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


async def watch_stop_signals(react: Callable[[int, str], bool]) -> None:
    """Count the ``STOP_SIGNALS`` as they arrive and call ``react(count, name)`` for each
    (``count`` 1 for the first, whatever the signal); stop watching once it returns False."""
    with signal_receiver(*STOP_SIGNALS) as received:
        count = 0
        async for signum in received:
            count += 1
            if not react(count, signal.Signals(signum).name):
                return


async def _watch_signals(stop: StopControl, outer: TaskGroup) -> None:
    """First SIGINT/SIGTERM/SIGHUP: stop gracefully. A second one: cancel at once."""

    def react(count: int, name: str) -> bool:
        if count == 1:
            stop.request(
                errors.RunInterrupted(
                    f"stopped by {name}: requests in flight were allowed to finish"
                )
            )
            return True
        # The first message promised in-flight requests could finish; they were not.
        stop.reason = errors.RunInterrupted(
            f"stopped by a second {name}: requests in flight were cancelled; their "
            "rows stay open and resume re-sends them under the same idempotency key"
        )
        outer.cancel_scope.cancel()
        return False

    await watch_stop_signals(react)
