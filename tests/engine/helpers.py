"""What the engine's unit tests share: a row ready for a ``RowWorker``, workers that never
finish a row, and a way to await the pipeline with a helper (a stopper) beside it."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio

from flexpay_batch.core import errors
from flexpay_batch.engine.pipeline import PipelineStats, StopControl, run_pipeline
from flexpay_batch.jobs.base import RowTask

T = TypeVar("T")


def row_task(row: int) -> RowTask:
    """Row ``row`` of a file, planned: identity ``E<row>``, row key ``rk<row>``, body hash
    ``bh<row>`` and idempotency key ``fpb_<row>``; an empty body."""
    return RowTask(
        row=row,
        line=row,
        identity=f"E{row}",
        row_key=f"rk{row}",
        body={},
        body_hash=f"bh{row}",
        idempotency_key=f"fpb_{row}",
    )


class NeverFinishing:
    """Pipeline work that never ends a row (a request on the wire, or a wait at a paused
    limiter) and a sink that fails the test if anything reaches it: only a stop ends such a
    pipeline. ``started`` is set once a row has begun."""

    def __init__(self) -> None:
        self.started = anyio.Event()

    async def work(self, row: int) -> int:
        self.started.set()
        await anyio.sleep_forever()
        return row

    async def record(self, outcome: int) -> None:
        raise AssertionError(f"no row finished, so nothing is recorded (got {outcome})")

    async def pipeline(
        self,
        rows: int,
        *,
        workers: int,
        stop: StopControl,
        handle_signals: bool = False,
        idle: Callable[[], Awaitable[None]] | None = None,
    ) -> PipelineStats:
        """``run_pipeline`` of ``rows`` rows of this work with an endless grace period: only a
        stop at once (or, with ``idle``, one while nothing is on the wire) ends it."""
        return await run_pipeline(
            iter(range(rows)),
            self.work,
            self.record,
            workers=workers,
            stop=stop,
            grace=math.inf,
            handle_signals=handle_signals,
            idle=idle,
        )


async def beside(helper: Callable[[], Coroutine[Any, Any, None]], main: Awaitable[T]) -> T:
    """Await ``main`` with ``helper`` running alongside; ``main``'s exception escapes as is."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    async def run_main() -> None:
        try:
            outcome.append(await main)
        except errors.FlexPayBatchError as exc:
            failure.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(helper)
        await run_main()
    if failure:
        raise failure[0]
    return outcome[0]
