"""One run of the engine, in this process, through the same entry point the CLI uses.

``run_engine`` builds the ``RunRequest`` that ``flexpay-batch onboard`` builds and awaits
``runner.run_job`` against a simulator (not ``--sandbox``: the simulator runs in its own
process, see ``simproc``). Progress goes to a log file in the run directory, i.e. the plain-line
reporter a pipe or CI log gets. Wall time is ``time.perf_counter`` around the whole
``run_job`` (hashing the input, counting rows, pre-flight reads, the pipeline, the final
journal flush and writing results.csv / report.json); CPU time is this process's user + system
seconds over the same span, every thread included (the reader thread and the journal's commit
thread).

``journal=False`` runs the same code with ``AsyncJournalWriter.record``, ``.record_nowait``
(the engine's one record per row) and ``.flush`` replaced
by no-ops for the duration of the run: the pipeline hands no transition to the journal, so no
SQLite statement and no fsync happens per row (the journal file is still created, its job row
and one ``set_meta`` are still written at start-up, and the outputs are written from an
empty journal).

Writing the outputs (``report.write_outputs``: results.csv, rejects.csv, report.json, rebuilt
from the journal and the input) is timed on its own in every run, wall and CPU, so figure 4
can compare the journal on and off without it: from an empty journal it does less work, which
would flatter "off".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import psutil

from flexpay_batch.core.limitspec import LimitSettings
from flexpay_batch.core.settings import Settings
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.report import write_outputs
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.run import run_job
from flexpay_batch.journal.transitions import Transition
from flexpay_batch.journal.writer import AsyncJournalWriter

from .simproc import RunningSim

#: An engine run longer than this is cancelled (every benchmark loop is bounded in time).
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class EngineRun:
    """The outcome of one engine run: seconds of wall and CPU time, and what it did."""

    wall_seconds: float
    cpu_seconds: float
    created: int
    throttled: int
    retries: int
    exit_code: int
    #: Wall and CPU seconds spent in ``write_outputs`` (included in the two above).
    outputs_wall_seconds: float = 0.0
    outputs_cpu_seconds: float = 0.0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def _noop_record(self: AsyncJournalWriter, transition: Transition) -> None:
    return None


def _noop_record_nowait(self: AsyncJournalWriter, transition: Transition) -> None:
    return None


async def _noop_flush(self: AsyncJournalWriter) -> None:
    return None


@dataclass
class _Timed:
    """Wall and CPU seconds accumulated by the calls of one wrapped function."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def _timing_outputs(timed: _Timed) -> Iterator[None]:
    """Time every ``write_outputs`` call of the runner (the same way in every run)."""

    def timed_write_outputs(*args: Any, **kwargs: Any) -> None:
        cpu_before, started = cpu_seconds(), time.perf_counter()
        try:
            write_outputs(*args, **kwargs)
        finally:
            timed.wall += time.perf_counter() - started
            timed.cpu += cpu_seconds() - cpu_before

    with mock.patch("flexpay_batch.engine.run.write_outputs", timed_write_outputs):
        yield


@contextlib.contextmanager
def _journal_switch(enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    with (
        mock.patch.object(AsyncJournalWriter, "record", _noop_record),
        mock.patch.object(AsyncJournalWriter, "record_nowait", _noop_record_nowait),
        mock.patch.object(AsyncJournalWriter, "flush", _noop_flush),
    ):
        yield


def _request(csv_path: Path, run_dir: Path, limits: LimitSettings, workers: int) -> RunRequest:
    settings = Settings(run_dir=run_dir, workers=workers, limits=limits)
    return RunRequest(
        kind="onboarding",
        input_path=csv_path,
        settings=settings,
        run_dir=run_dir,
    )


async def _run(request: RunRequest, sim: RunningSim) -> RunSummary:
    async with asyncio.timeout(RUN_TIMEOUT):
        return await run_job(request, base_url=sim.base_url, ca_bundle=sim.ca_path, token=sim.token)


def run_engine(
    csv_path: Path,
    sim: RunningSim,
    run_dir: Path,
    *,
    limits: LimitSettings,
    workers: int = 8,
    journal: bool = True,
) -> EngineRun:
    """Onboard every row of ``csv_path`` into ``sim``; time it (see the module docstring)."""
    request = _request(csv_path, run_dir, limits, workers)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "engine.log"
    outputs = _Timed()
    with (
        _journal_switch(journal),
        _timing_outputs(outputs),
        log_path.open("w", encoding="utf-8") as log,
        contextlib.redirect_stderr(log),
    ):
        cpu_before, started = cpu_seconds(), time.perf_counter()
        summary = asyncio.run(_run(request, sim))
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    if summary.stopped is not None:
        raise RuntimeError(f"the engine stopped: {summary.stopped!r} (log: {log_path})")
    return EngineRun(
        wall_seconds=wall,
        cpu_seconds=cpu,
        created=summary.counts.get(RowStatus.CREATED, 0),
        throttled=summary.throttled,
        retries=summary.retries,
        exit_code=summary.exit_code,
        outputs_wall_seconds=outputs.wall,
        outputs_cpu_seconds=outputs.cpu,
    )
