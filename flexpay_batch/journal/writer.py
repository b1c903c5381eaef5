"""Group commits from asyncio: a buffer, and a task that commits it in a worker thread.

The one buffering path of the journal: the engine records every transition here, and this
writer hands batches to ``Journal.commit_batch`` (one transaction each, fsynced) without ever
blocking the event loop.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final, Self

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Transition

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_DELAY", "AsyncJournalWriter"]

#: Transitions per group commit at most.
DEFAULT_MAX_BATCH: Final = 500
#: Seconds the oldest buffered transition waits for its commit at most. Each commit costs about
#: 1 ms of CPU whatever its size (the fsync, the transaction, the hand-off to the thread), so
#: the delay sets most of the journal's cost per row: measured (10k rows, limits off), 50 ms made
#: batches of ~40 rows and ~30 us of commit CPU per row, 250 ms batches of ~200 and ~10 us.
#: What it costs: a crash loses at most this long of recorded outcomes, whose rows a resume
#: re-sends under their same idempotency keys (the server replays them; see ``store``).
DEFAULT_MAX_DELAY: Final = 0.25


class AsyncJournalWriter:
    """Group commits from asyncio without ever blocking the event loop on an fsync.

    ::

        with open_run_journal(run_dir, job) as journal:
            async with AsyncJournalWriter(journal) as writer:
                await writer.record(Done(row=2, server_id="emp_1", status=RowStatus.CREATED))
                await writer.flush()          # everything recorded so far is durable

    ``record`` appends to an in-memory buffer (waiting only while ``max_buffer`` transitions
    are queued: backpressure if the disk falls behind). A background task commits the buffer
    through ``Journal.commit_batch`` in a worker thread, one commit at a time, as soon as it
    holds ``max_batch`` transitions or its oldest one waited ``max_delay`` seconds. Leaving the
    ``async with`` commits the rest. A failed commit raises out of the ``async with`` and
    cancels its body: a run must not go on with a journal that no longer records.
    While a writer is open, commit transitions through it only (not ``Journal.commit_batch``),
    so that transitions of one row are committed in the order they happened. A transition
    only buffered is lost if the process dies; its row is then re-sent under the same key.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_buffer: int | None = None,
    ) -> None:
        """Commit every ``max_batch`` transitions or ``max_delay`` seconds, whichever comes
        first; ``record`` waits while ``max_buffer`` (default: 10 batches) are queued."""
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self._journal = journal
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._max_buffer = 10 * max_batch if max_buffer is None else max_buffer
        self._buffer: list[Transition] = []
        self._recorded = 0
        self._committed = 0
        self._flush_requested = False
        self._closing = False
        self._failed = False
        self._changed = anyio.Event()
        self._thread_limiter = anyio.CapacityLimiter(1)
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        self._notify()
        assert self._task_group is not None
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            await self._commit_leftovers()

    async def _commit_leftovers(self) -> None:
        """Commit what a failed or cancelled body left buffered: it did happen.

        Shielded, so an outer cancellation cannot drop it; skipped if the journal itself
        failed (its error is already on its way out and a retry would only mask it).
        """
        if not self._buffer or self._failed:
            return
        batch, self._buffer = self._buffer, []
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                self._journal.commit_batch, batch, limiter=self._thread_limiter
            )
        self._committed += len(batch)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def record(self, transition: Transition) -> None:
        """Queue ``transition`` for the next group commit (waits while the buffer is full)."""
        if self._closing:
            raise RuntimeError("the journal writer is closed")
        await self.room()
        self.record_nowait(transition)

    @property
    def full(self) -> bool:
        """True while ``max_buffer`` or more transitions wait for their commit."""
        return len(self._buffer) >= self._max_buffer

    async def room(self) -> None:
        """Return once fewer than ``max_buffer`` transitions wait (at once if they do)."""
        while len(self._buffer) >= self._max_buffer:
            await self._wait_change()

    def record_nowait(self, transition: Transition) -> None:
        """Queue ``transition`` at once, full buffer or not: for a caller that must not be
        interrupted between having an outcome and recording it, and that awaits ``room()``
        before its next one (so the buffer passes ``max_buffer`` by one per such caller)."""
        if self._closing:
            raise RuntimeError("the journal writer is closed")
        buffer = self._buffer
        buffer.append(transition)
        self._recorded += 1
        # Wake the committer when a batch starts (its timer) and when it is full; not on
        # every record past full (each wake-up makes a new Event). It re-checks the size
        # whenever it looks, so one wake-up at the threshold is enough.
        size = len(buffer)
        if size == 1 or size == self._max_batch:
            self._notify()

    async def flush(self) -> None:
        """Return once everything recorded before this call is committed."""
        target = self._recorded
        while self._committed < target:
            if self._failed or self._task_group is None:
                raise RuntimeError("the journal writer is not running")
            self._flush_requested = True
            self._notify()
            await self._wait_change()

    async def record_now(self, transition: Transition) -> None:
        """Record ``transition`` and return once it is committed."""
        await self.record(transition)
        await self.flush()

    async def set_meta(self, key: str, value: str) -> None:
        """Commit everything recorded so far, then store ``key`` = ``value`` durably."""
        await self.flush()
        await anyio.to_thread.run_sync(
            self._journal.set_meta, key, value, limiter=self._thread_limiter
        )

    async def _run(self) -> None:
        while True:
            await self._wait_due()
            if not self._buffer:
                return  # closing, and nothing left to commit
            batch, self._buffer = self._buffer, []
            self._flush_requested = False
            self._notify()  # room in the buffer again
            try:
                # Shielded: a batch taken out of the buffer is committed even if the run is
                # being cancelled (it takes milliseconds); cancellation lands at the next wait.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        self._journal.commit_batch, batch, limiter=self._thread_limiter
                    )
            except BaseException:
                self._failed = True
                raise
            self._committed += len(batch)
            self._notify()

    async def _wait_due(self) -> None:
        """Return when the buffer should be committed, or when closing with it empty."""
        while not self._buffer:
            if self._closing:
                return
            await self._wait_change()
        with anyio.move_on_after(self._max_delay):
            while not (
                len(self._buffer) >= self._max_batch or self._flush_requested or self._closing
            ):
                await self._wait_change()
