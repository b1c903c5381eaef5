"""Run a row job end to end: journal, client, pipeline, outputs.

Usage::

    exit_code = execute_request(RunRequest(kind="onboarding", input_path=..., settings=...))

The order of one invocation (a fresh run or a resume, they are the same code):

1. Open the run directory's journal, or create it; refuse to continue a job whose input,
   kind, base URL or token differ (``engine.opening``); build the job by its kind.
2. Count the rows (a cheap streaming pass) for the progress bar and the duration estimate,
   keeping each row's reference for the outputs (``count_rows_keeping_references``).
3. Pre-flight reads (``job.prepare``), then the pipeline: the file is read and validated
   again from the top (so duplicate detection and totals see every row), rows already
   settled in the journal are skipped, the rest are sent, each under its deterministic
   idempotency key, and every outcome is journaled in group commits.
4. The job's run-level ``finish`` (payroll: verify and submit).
5. Whatever happened, write ``results.csv``, ``rejects.csv`` and ``report.json`` (0600) from
   the journal and the input file.

The steps live in their own modules: ``target`` (sandbox or real API), ``rundir``, ``opening``
(journal and job), ``plan`` (tasks and keys), ``worker`` (one row), ``rates`` and ``report``.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import Settings, environment, load_token
from flexpay_batch.core.states import OPEN, RowStatus
from flexpay_batch.engine.carryover import carry_over
from flexpay_batch.engine.limiting import limiter_store, shared_limiters
from flexpay_batch.engine.opening import META_INPUT_ROWS, build_job, job_info, open_journal
from flexpay_batch.engine.pipeline import StopControl, run_pipeline, signal_receiver
from flexpay_batch.engine.plan import keys_may_have_expired, plan_tasks
from flexpay_batch.engine.progress import Reporter, RunStart, SilentReporter
from flexpay_batch.engine.rates import estimate_seconds, report_rate, server_pause_until
from flexpay_batch.engine.reach import FailFastOnConnect
from flexpay_batch.engine.report import write_outputs
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.rundir import default_run_dir, input_sha256
from flexpay_batch.engine.target import Announce, target
from flexpay_batch.engine.worker import RowWorker, transition
from flexpay_batch.input.readers import InputReferences, count_rows_keeping_references
from flexpay_batch.jobs.base import RowJob, RowOutcome, RowTask
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.writer import AsyncJournalWriter


def execute_request(
    request: RunRequest,
    *,
    reporter: Reporter | None = None,
    on_summary: Callable[[RunSummary], None] | None = None,
    announce: Announce | None = None,
) -> int:
    """Run ``request`` to completion (synchronously) and return the process exit code.

    Raises the ``errors`` class that stopped the run (after the outputs were written), so the
    command line shows its message; returns 0 or 1 otherwise. ``reporter`` is told the run's
    progress (none: nothing is shown). ``on_summary`` is given the summary first whenever the
    run got as far as its run directory (``--json`` prints it). ``announce`` is told what
    must be said before the run begins: the sandbox banner (``engine.target``).
    """
    # Before the token, the sandbox, the run directory and any write: a renamed column or a
    # file of the other kind is one error, not a run of rejected rows.
    check_header(job_spec(request.kind), request.input_path, encoding=request.encoding)
    token = None if request.sandbox else load_token(request.settings.token_file, environment())
    if token is not None:
        install_redaction(token)
    with _stop_signals_interrupt():
        summary = anyio.run(_run, request, token, reporter, announce)
    if on_summary is not None:
        on_summary(summary)
    if summary.stopped is not None:
        stopped = summary.stopped
        if isinstance(stopped, errors.FlexPayBatchError) and "RUN_DIR" in stopped.hint:
            # Name the real directory in "flexpay-batch resume RUN_DIR" hints.
            where = shlex.quote(str(summary.run_dir))
            stopped.hint = stopped.hint.replace("RUN_DIR", where)  # type: ignore[misc]
        raise stopped
    return summary.exit_code


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP outside the row pipeline (start-up, pre-flight, between stages)
    stop the run like Ctrl-C: ``RunInterrupted`` (exit 130), the outputs written from the
    journal. Without this they would kill the process with no message and no outputs. The
    pipeline and the job's finish watch them on the loop and put this handler back after
    (``engine.pipeline.signal_receiver``); writing the outputs defers them."""

    def interrupt(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        raise errors.RunInterrupted(f"stopped by {name}")

    with _stop_signals_handled_by(interrupt):
        yield


@contextlib.contextmanager
def _stop_signals_handled_by(handler: Callable[[int, object], None]) -> Iterator[None]:
    """SIGTERM and SIGHUP go to ``handler`` inside the block, to the previous handlers after.
    Off the main thread (where Python cannot set handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


async def _run(
    request: RunRequest, token: str | None, reporter: Reporter | None, announce: Announce | None
) -> RunSummary:
    # The shared store first: an unreachable Redis stops the command before anything is
    # written (exit 2), not as a run that stopped.
    async with (
        limiter_store(request.settings) as store,
        target(request, token, announce=announce) as (base_url, ca_bundle, api_token),
    ):
        return await run_job(
            request,
            base_url=base_url,
            ca_bundle=ca_bundle,
            token=api_token,
            store=store,
            reporter=reporter,
        )


async def run_job(
    request: RunRequest,
    *,
    base_url: str,
    ca_bundle: Path | None,
    token: str,
    store: RedisStore | None = None,
    reporter: Reporter | None = None,
    stop: StopControl | None = None,
) -> RunSummary:
    """One invocation against ``base_url``; see the module docstring for the steps.

    ``reporter`` is told the run's progress and messages (default: none, the run is silent;
    the command line passes its progress bar). ``stop`` hands the
    signals to the caller: without it the run watches SIGINT/SIGTERM/SIGHUP itself, which
    only one run per process can do; a host of several concurrent runs (a bureau worker)
    watches them once and gives each run its own ``StopControl.child()`` of one host-wide
    stop: a run's fatal error (its token revoked) requests its own stop, so a shared one
    would stop every other run too. It closes the reporter it is given
    (``Reporter.close``) when the run ends.
    """
    started = time.monotonic()
    # Hashing and counting a large file take seconds to minutes: off the event loop, where a
    # bureau worker's heartbeats (and other jobs) run; a blocked loop loses the job's hold.
    input_sha = await anyio.to_thread.run_sync(input_sha256, request.input_path)
    wanted = job_info(request, input_sha=input_sha, base_url=base_url, token=token)
    run_dir = request.run_dir or request.settings.run_dir or default_run_dir(request, input_sha)
    summary = RunSummary(run_dir=run_dir)
    if reporter is None:
        reporter = SilentReporter()
    signals = _Signals(owned=stop is None)
    inputs = _InputPass()
    with open_journal(request, run_dir, wanted) as journal:
        if journal.job.job_id != wanted.job_id:
            reporter.message(f"resuming job {journal.job.job_id} in {run_dir}")
        if request.retry_rejected:
            journal.reset_rejected()
        job = build_job(request, journal)
        carried = carry_over(request, run_dir, journal)
        if carried:
            reporter.message(
                f"{carried} rows took effect in an earlier run of this file: recorded as "
                "already existed, not sent again"
            )
        try:
            await _run_rows(
                request,
                journal,
                job,
                summary,
                reporter,
                _Target(base_url, ca_bundle, token, store),
                stop or StopControl(on_stop=partial(_say_stopping, reporter)),
                signals,
                inputs,
            )
        except (errors.FlexPayBatchError, BaseExceptionGroup) as exc:
            summary.stopped = _stopping_error(exc)
        finally:
            summary.elapsed = time.monotonic() - started
            summary.journal_counts = {str(k): v for k, v in journal.counts().items()}
            summary.input_changed = _input_changed(request, journal)
            if summary.input_changed:
                reporter.message(
                    f"the input file {request.input_path} changed during the run: the outputs "
                    "list only the rows the journal holds, without their references; check "
                    "the file, then resume with it as it was",
                    logging.WARNING,
                )
            with _signals_deferred(summary) if signals.owned else contextlib.nullcontext():
                write_outputs(run_dir, journal, request, summary, references=inputs.references)
            reporter.message(_where_outputs_are(run_dir, summary))
            reporter.finish({k: v for k, v in summary.journal_counts.items() if v})
            reporter.close()
    return summary


async def _idle_in_a_server_pause(client: FlexPayClient, limiters: LimiterSet) -> None:
    """Return once nothing is on the wire, if the server has paused us when the stop comes.

    Then the workers only wait out the pause (up to ``max_server_pause``) to send rows the
    operator asked not to send: a stop need not wait for them. Outside a pause, never returns,
    so requests about to leave the limiter still go and settle their rows within the grace.
    """
    now = anyio.current_time()
    if server_pause_until(limiters, now=now, wall=time.time()) is None:
        await anyio.sleep_forever()
    await client.wait_nothing_on_the_wire()


def _input_changed(request: RunRequest, journal: Journal) -> bool:
    """Whether the input's bytes now differ from those the job began with (or it is gone)."""
    try:
        return input_sha256(request.input_path) != journal.job.input_sha256
    except errors.InputFileError:
        return True


def _stopping_error(exc: BaseException) -> errors.FlexPayBatchError:
    """The error that stopped the run, out of the exception groups anyio's task groups wrap
    it in (the pipeline, the journal writer and the rate reporter each run one).

    Re-raises ``exc`` when it holds anything else (a bug, a cancellation): that must not be
    reported as an orderly stop.
    """
    if isinstance(exc, errors.FlexPayBatchError):
        return exc
    assert isinstance(exc, BaseExceptionGroup)
    # A local write refused (disk full, read-only) inside a task group is a stop the user can
    # fix, not a bug: it becomes ``LocalFileError`` like the same fault outside a group.
    matched, rest = exc.split(
        lambda e: isinstance(e, errors.FlexPayBatchError) or errors.is_local_fault(e)
    )
    if matched is None or rest is not None:
        raise exc
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    if isinstance(first, OSError | sqlite3.Error):
        return errors.local_fault(first)
    assert isinstance(first, errors.FlexPayBatchError)
    return first


def _where_outputs_are(run_dir: Path, summary: RunSummary) -> str:
    problems = summary.unsettled
    rejects = f"; {problems} rows in rejects.csv" if problems else ""
    return f"results in {run_dir}/ (results.csv, report.json, report.html){rejects}"


@dataclass(frozen=True)
class _Target:
    """Where the run's requests go, and the limiter store they share (if any)."""

    base_url: str
    ca_bundle: Path | None
    token: str = field(repr=False)
    store: RedisStore | None


@dataclass
class _InputPass:
    """What the count of the input's rows kept for the outputs: each record's reference
    (None until counted, or for a file too large to keep them of)."""

    references: InputReferences | None = None


@dataclass(frozen=True)
class _Signals:
    """Whether this run watches the stop signals itself (one run per process can)."""

    owned: bool


async def _run_rows(
    request: RunRequest,
    journal: Journal,
    job: RowJob,
    summary: RunSummary,
    reporter: Reporter,
    where: _Target,
    stop: StopControl,
    signals: _Signals,
    inputs: _InputPass,
) -> None:
    base_url, ca_bundle, token, store = where.base_url, where.ca_bundle, where.token, where.store
    settings = request.settings
    # The count reads every record: it keeps their references on the way, so the outputs
    # need not read the file again.
    total, inputs.references = await anyio.to_thread.run_sync(
        partial(
            count_rows_keeping_references,
            request.input_path,
            job_spec(request.kind).reference_columns,
            encoding=request.encoding,
        )
    )
    journal.set_meta(META_INPUT_ROWS, str(total))
    settled = journal.settled_rows()
    write_rate = settings.limits.write.rate.per_second
    to_send = max(0, total - len(settled))
    reporter.start(
        RunStart(
            total_rows=total,
            estimate_seconds=estimate_seconds(to_send, settings),
            limit_per_second=write_rate,
            done_rows=min(len(settled), total),
        )
    )
    # A server-imposed pause never outlasts max_server_pause nor a row's whole deadline.
    max_pause = min(settings.retry.max_retry_after, settings.retry.deadline)
    limiters = shared_limiters(settings.limits, token, store, max_pause=max_pause)
    if store is not None:
        store.set_notifier(reporter.message)
    client = FlexPayClient(
        base_url,
        token,
        ca_bundle=ca_bundle,
        limiters=limiters,
        max_in_flight=settings.workers,
        timeouts=settings.timeouts,
    )
    api = ApiSession(client, settings.retry, RetryBudget())
    async with client, AsyncJournalWriter(journal) as writer:
        # A server that cannot be reached at all stops the pre-flight in seconds (exit 4).
        preflight = FailFastOnConnect(client, api.policy, api.budget)
        await job.prepare(preflight, journal.job.secret)
        worker = RowWorker(
            job,
            api,
            reporter,
            summary,
            known_ids=journal.server_ids(),
            on_abandoned=writer.record_nowait,
        )
        tasks = plan_tasks(
            request,
            job,
            journal,
            skip=settled,
            look_up_first=keys_may_have_expired(journal, settings),
            totals=summary.totals,
            look_up_rows=frozenset(journal.unverified_rows()),
        )
        try:
            await _pipeline(
                tasks, worker, writer, summary, reporter, settings, stop, limiters, client, signals
            )
        finally:
            await writer.flush()
        if signals.owned:
            await _finish_unless_signalled(job, api, journal, summary, reporter)
        elif stop.requested:
            # The caller stopped the run: the finish (payroll's submit) waits for a resume.
            summary.stopped = _stopping_error(stop.reason or errors.RunInterrupted("stopped"))
        else:
            await _finish(job, api, journal, summary, reporter)
    summary.throttled = sum(stats.throttled for stats in limiters.statistics().values())


def _say_stopping(reporter: Reporter, reason: BaseException) -> None:
    if isinstance(reason, errors.RunInterrupted):
        # The requests in flight may take seconds to finish: say at once that Ctrl-C was heard.
        reporter.message(
            "stopping… letting requests in flight finish (Ctrl-C again to stop at once)",
            logging.WARNING,
        )


async def _pipeline(
    tasks: Iterator[RowTask],
    worker: RowWorker,
    writer: AsyncJournalWriter,
    summary: RunSummary,
    reporter: Reporter,
    settings: Settings,
    stop: StopControl,
    limiters: LimiterSet,
    client: FlexPayClient,
    signals: _Signals,
) -> None:
    counts = summary.counts

    def record(outcome: RowOutcome) -> Awaitable[None] | None:
        # One journal record per row, queued without a wait (nothing can cut it off); when
        # the journal falls behind, the worker waits for room before its next row instead.
        writer.record_nowait(transition(outcome))
        counts[outcome.status] += 1
        reporter.row_done(outcome.status)
        return writer.room() if writer.full else None

    async with anyio.create_task_group() as tg:
        tg.start_soon(report_rate, summary, reporter, limiters)
        await run_pipeline(
            tasks,
            worker.process,
            record,
            workers=settings.workers,
            stop=stop,
            handle_signals=signals.owned,
            idle=partial(_idle_in_a_server_pause, client, limiters),
        )
        tg.cancel_scope.cancel()


async def _finish_unless_signalled(
    job: RowJob, api: ApiSession, journal: Journal, summary: RunSummary, reporter: Reporter
) -> None:
    """``_finish``, stopped by SIGTERM/SIGHUP like Ctrl-C: ``RunInterrupted`` (exit 130) and
    the outputs written; resume finishes the job (its finish is idempotent)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_raise_on_stop_signal, "while the job was being finished")
        await _finish(job, api, journal, summary, reporter)
        tg.cancel_scope.cancel()


async def _raise_on_stop_signal(stage: str) -> None:
    with signal_receiver(signal.SIGTERM, signal.SIGHUP) as received:
        async for signum in received:
            name = signal.Signals(signum).name
            raise errors.RunInterrupted(f"stopped by {name} {stage}")


@contextlib.contextmanager
def _signals_deferred(summary: RunSummary) -> Iterator[None]:
    """SIGTERM/SIGHUP while the outputs are written: finish writing them, then report the
    run as interrupted (exit 130) instead of leaving half a results file."""
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    try:
        with _stop_signals_handled_by(hold):
            yield
    finally:
        if received and summary.stopped is None:
            name = signal.Signals(received[0]).name
            summary.stopped = errors.RunInterrupted(
                f"stopped by {name} while the outputs were written (they are complete)"
            )


async def _finish(
    job: RowJob,
    api: ApiSession,
    journal: Journal,
    summary: RunSummary,
    reporter: Reporter,
) -> None:
    counts = journal.counts()
    open_rows = sum(n for status, n in counts.items() if status in OPEN)
    all_accepted = counts.get(RowStatus.REJECTED, 0) == 0 and open_rows == 0
    report = await job.finish(
        api,
        file_count=summary.totals.valid,
        file_total=summary.totals.amount,
        all_accepted=all_accepted,
    )
    for message in report.messages:
        reporter.message(message)
    summary.messages.extend(report.messages)
    summary.job_incomplete = report.incomplete


__all__ = ["execute_request", "run_job"]
