"""Run a row job end to end: journal, client, pipeline, outputs.

Usage::

    exit_code = execute_request(RunRequest(job_factory=..., kind="onboarding", ...))

The order of one invocation (a fresh run or a resume, they are the same code):

1. Open the run directory's journal, or create it; refuse to continue a job whose input,
   kind, base URL or token differ (``journal.check_resumable``).
2. Count the rows (a cheap streaming pass) for the progress bar and the duration estimate.
3. Pre-flight reads (``job.prepare``), then the pipeline: the file is read and validated
   again from the top (so duplicate detection and totals see every row), rows already
   settled in the journal are skipped, the rest are sent, each under its deterministic
   idempotency key, and every outcome is journaled in group commits.
4. Run-level finish (payroll: verify and submit).
5. Whatever happened, write ``results.csv``, ``rejects.csv`` and ``report.json`` (0600) from
   the journal and the input file.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from flexpay_batch.api.client import FlexPayClient, validate_base_url
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.retry.loop import Attempts
from flexpay_batch.api.session import ApiSession
from flexpay_batch.cli.status import META_INPUT_ROWS
from flexpay_batch.core import errors
from flexpay_batch.core.keys import (
    body_sha256,
    file_sha256,
    idempotency_key,
    keyed_hash,
    token_fingerprint,
)
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import (
    DEFAULT_BASE_URL,
    Settings,
    environment,
    load_token,
    settings_from_journal,
    settings_to_journal,
)
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.pipeline import StopControl, run_pipeline
from flexpay_batch.engine.progress import Reporter, make_reporter
from flexpay_batch.engine.report import write_outputs
from flexpay_batch.input.models import OnboardingRow
from flexpay_batch.input.readers import count_rows, iter_records
from flexpay_batch.input.validation import Rejection, validate_rows
from flexpay_batch.jobs.base import RowJob, RowOutcome, RowRejection, RowTask, Status
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.journal.jobinfo import JobInfo
from flexpay_batch.journal.run_journal import open_run_journal
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Failed, Register, Rejected, Transition
from flexpay_batch.journal.writer import AsyncJournalWriter

SANDBOX = "sandbox"


class JournalMeta:
    """The journal's durable key/value table, as the jobs see it."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def get(self, key: str) -> str | None:
        return self._journal.get_meta(key)

    def set(self, key: str, value: str) -> None:
        self._journal.set_meta(key, value)


@dataclass(frozen=True)
class RunRequest:
    """Everything one invocation of ``onboard``, ``payroll`` or ``resume`` was asked to do."""

    job_factory: Callable[[JournalMeta], RowJob]
    kind: str
    input_path: Path
    settings: Settings
    sandbox: bool = False
    encoding: str | None = None
    restart: bool = False
    retry_rejected: bool = False
    json_logs: bool = False
    label: str | None = None
    run_dir: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: With ``sandbox``: an onboarding file whose employees the simulator starts with.
    sandbox_employees: Path | None = None
    #: Continue a job with another token than the one it began with (e.g. after the first was
    #: revoked). The operator vouches it is of the same organisation: idempotency keys are
    #: scoped per organisation, so only then do re-sent rows replay instead of applying again.
    allow_token_change: bool = False


@dataclass
class FileTotals:
    """Figures about the whole input, gathered while the producer reads it."""

    rows: int = 0
    valid: int = 0
    amount: Decimal = field(default_factory=Decimal)
    rejected_locally: int = 0


@dataclass
class RunSummary:
    """What this invocation did; the basis of the report and the exit code."""

    run_dir: Path
    counts: Counter[str] = field(default_factory=Counter)
    journal_counts: dict[str, int] = field(default_factory=dict)
    totals: FileTotals = field(default_factory=FileTotals)
    messages: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    throttled: int = 0
    retries: int = 0
    stopped: BaseException | None = None
    #: Payroll: every row went through but the run's figures differ, so it was not submitted.
    run_left_in_draft: bool = False

    @property
    def exit_code(self) -> int:
        if isinstance(self.stopped, errors.FlexPayBatchError):
            return self.stopped.exit_code
        if self.stopped is not None:
            return 1
        unsettled = self.journal_counts.get("failed", 0) + self.journal_counts.get("rejected", 0)
        open_rows = self.journal_counts.get("pending", 0) + self.journal_counts.get("in_flight", 0)
        incomplete = unsettled or open_rows or self.run_left_in_draft
        return 1 if incomplete or self.totals.rows == 0 else 0


def execute_request(request: RunRequest) -> int:
    """Run ``request`` to completion (synchronously) and return the process exit code.

    Raises the ``errors`` class that stopped the run (after the outputs were written), so the
    command line shows its message; returns 0 or 1 otherwise.
    """
    token = None if request.sandbox else load_token(request.settings.token_file, environment())
    if token is not None:
        install_redaction(token)
    summary = anyio.run(_run, request, token)
    if summary.stopped is not None:
        stopped = summary.stopped
        if isinstance(stopped, errors.FlexPayBatchError) and "RUN_DIR" in stopped.hint:
            # Name the real directory in "flexpay-batch resume RUN_DIR" hints.
            where = shlex.quote(str(summary.run_dir))
            stopped.hint = stopped.hint.replace("RUN_DIR", where)  # type: ignore[misc]
        raise stopped
    return summary.exit_code


async def _run(request: RunRequest, token: str | None) -> RunSummary:
    async with _target(request, token) as (base_url, ca_bundle, api_token):
        return await run_job(request, base_url=base_url, ca_bundle=ca_bundle, token=api_token)


@asynccontextmanager
async def _target(
    request: RunRequest, token: str | None
) -> AsyncIterator[tuple[str, Path | None, str]]:
    """The API to talk to: the configured one, or an embedded simulator (``--sandbox``)."""
    if not request.sandbox:
        assert token is not None
        # Checked before the run directory is made: a journal begun against a mistyped URL
        # would refuse the corrected command (the default run directory is the same).
        yield validate_base_url(request.settings.base_url), request.settings.ca_bundle, token
        return
    from flexpay_batch.sim import SimConfig, Simulator

    async with Simulator(SimConfig(limits=request.settings.limits)) as sim:
        _banner(
            f"SANDBOX: running against an embedded FlexPay simulator at {sim.base_url}. "
            "Nothing real is touched; its data vanishes when this command ends."
        )
        if request.sandbox_employees is not None:
            seeded = sim.seed_employees(_employee_bodies(request.sandbox_employees))
            _banner(f"SANDBOX: seeded {seeded} employees from {request.sandbox_employees}")
        yield sim.base_url, sim.ca_path, sim.tokens["admin"]


def _employee_bodies(path: Path) -> Iterator[dict[str, object]]:
    """The request bodies of the valid rows of an onboarding file (for sandbox seeding)."""
    for item in validate_rows(iter_records(path), OnboardingRow, source_name=str(path)):
        if not isinstance(item, Rejection):
            yield item.model.to_request_body()


def _banner(text: str) -> None:
    print(f"*** {text} ***", file=sys.stderr)


def default_run_dir(request: RunRequest, input_sha256: str) -> Path:
    """``.flexpay/runs/<kind>-<file stem>[-<label>]-<sha8>``: the same command resumes."""
    parts = [SANDBOX] if request.sandbox else []
    parts += [request.kind, request.input_path.stem]
    if request.label:
        parts.append(request.label)
    parts.append(input_sha256[:8])
    name = "-".join(part.replace(os.sep, "_") for part in parts)
    return Path(".flexpay") / "runs" / name


def _job_info(request: RunRequest, *, input_sha: str, base_url: str, token: str) -> JobInfo:
    sandbox = request.sandbox
    config = {
        **settings_to_journal(request.settings),
        "base_url": SANDBOX if sandbox else base_url,
        "encoding": request.encoding,
        "job": request.parameters,
    }
    return JobInfo.new(
        kind=request.kind,  # type: ignore[arg-type]  # validated by JobInfo itself
        input_path=str(request.input_path.resolve()),
        input_sha256=input_sha,
        base_url=SANDBOX if sandbox else base_url,
        token_fingerprint=SANDBOX if sandbox else token_fingerprint(token),
        config=config,
    )


def open_journal(request: RunRequest, run_dir: Path, wanted: JobInfo) -> Journal:
    """Create the run's journal, or open it and check that this invocation may continue it."""
    return open_run_journal(
        run_dir / JOURNAL_NAME,
        wanted,
        restart=request.restart,
        allow_token_change=request.allow_token_change,
        same_parameters_check=_check_same_parameters,
    )


#: Job settings an invocation may change when it continues a run: none of them changes what a
#: row sends. ``submit``: review a run in draft, then submit it. The control figures: a run
#: left in draft because the operator's figure was wrong is submitted by the same command
#: with the right figure (``--restart`` would create a second payroll run instead).
_CHANGEABLE_PARAMETERS = frozenset({"submit", "expected_total", "expected_item_count"})


def _check_same_parameters(stored: JobInfo, wanted: JobInfo) -> None:
    before, now = (_comparable(job.config.get("job")) for job in (stored, wanted))
    if before != now:
        raise errors.ResumeRefused(
            f"the run directory's job was started with other job settings ({before}); "
            f"this command asks for {now}"
        )


def _comparable(parameters: object) -> object:
    if isinstance(parameters, dict):
        return {k: v for k, v in parameters.items() if k not in _CHANGEABLE_PARAMETERS}
    return parameters


async def run_job(
    request: RunRequest, *, base_url: str, ca_bundle: Path | None, token: str
) -> RunSummary:
    """One invocation against ``base_url``; see the module docstring for the steps."""
    started = time.monotonic()
    input_sha = _input_sha(request.input_path)
    wanted = _job_info(request, input_sha=input_sha, base_url=base_url, token=token)
    run_dir = request.run_dir or request.settings.run_dir or default_run_dir(request, input_sha)
    summary = RunSummary(run_dir=run_dir)
    reporter = make_reporter(json_logs=request.json_logs, stream=sys.stderr)
    with open_journal(request, run_dir, wanted) as journal:
        if journal.job.job_id != wanted.job_id:
            reporter.message(f"resuming job {journal.job.job_id} in {run_dir}")
        if request.retry_rejected:
            journal.reset_rejected()
        job = request.job_factory(JournalMeta(journal))
        try:
            await _run_rows(request, journal, job, summary, reporter, base_url, ca_bundle, token)
        except (errors.FlexPayBatchError, BaseExceptionGroup) as exc:
            summary.stopped = _stopping_error(exc)
        finally:
            summary.elapsed = time.monotonic() - started
            summary.journal_counts = {str(k): v for k, v in journal.counts().items()}
            write_outputs(run_dir, journal, request, summary)
            reporter.message(_where_outputs_are(run_dir, summary))
            reporter.finish({k: v for k, v in summary.journal_counts.items() if v})
            reporter.close()
    return summary


def _stopping_error(exc: BaseException) -> errors.FlexPayBatchError:
    """The error that stopped the run, out of the exception groups anyio's task groups wrap
    it in (the pipeline, the journal writer and the rate reporter each run one).

    Re-raises ``exc`` when it holds anything else (a bug, a cancellation): that must not be
    reported as an orderly stop.
    """
    if isinstance(exc, errors.FlexPayBatchError):
        return exc
    assert isinstance(exc, BaseExceptionGroup)
    matched, rest = exc.split(errors.FlexPayBatchError)
    if matched is None or rest is not None:
        raise exc
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, errors.FlexPayBatchError)
    return first


def _where_outputs_are(run_dir: Path, summary: RunSummary) -> str:
    problems = summary.journal_counts.get("rejected", 0) + summary.journal_counts.get("failed", 0)
    rejects = f"; {problems} rows in rejects.csv" if problems else ""
    return f"results in {run_dir}/ (results.csv, report.json){rejects}"


def _input_sha(path: Path) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise errors.InputFileError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise errors.InputFileError(f"input file {path} is a directory") from None


async def _run_rows(
    request: RunRequest,
    journal: Journal,
    job: RowJob,
    summary: RunSummary,
    reporter: Reporter,
    base_url: str,
    ca_bundle: Path | None,
    token: str,
) -> None:
    settings = request.settings
    total = count_rows(request.input_path, encoding=request.encoding)
    journal.set_meta(META_INPUT_ROWS, str(total))
    settled = journal.settled_rows()
    write_rate = settings.limits.write.rate.per_second
    to_send = max(0, total - len(settled))
    reporter.start(
        total_rows=total,
        estimate_seconds=_estimate(to_send, settings),
        limit_per_second=write_rate,
    )
    limiters = LimiterSet(settings.limits)
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
        await job.prepare(api, journal.job.secret)
        worker = RowWorker(job, api, writer, reporter, summary)
        tasks = plan_tasks(
            request,
            job,
            journal,
            skip=settled,
            look_up_first=_keys_may_have_expired(journal, settings),
            totals=summary.totals,
        )
        stop = StopControl()
        try:
            await _pipeline(tasks, worker, writer, summary, reporter, settings, stop)
        finally:
            await writer.flush()
        await _finish(job, api, journal, summary, reporter)
    summary.throttled = sum(stats.throttled for stats in limiters.statistics().values())


def _estimate(rows: int, settings: Settings) -> float:
    limits = settings.limits.write
    return max(0.0, rows - limits.burst) / limits.rate.per_second


def _keys_may_have_expired(journal: Journal, settings: Settings) -> bool:
    """True when an earlier attempt may be older than the server's key memory (with margin)."""
    return time.time() - journal.job.created_at > 0.9 * settings.key_ttl


async def _pipeline(
    tasks: Iterator[RowTask],
    worker: RowWorker,
    writer: AsyncJournalWriter,
    summary: RunSummary,
    reporter: Reporter,
    settings: Settings,
    stop: StopControl,
) -> None:
    async def record(outcome: RowOutcome) -> None:
        await writer.record(_transition(outcome))
        summary.counts[outcome.status] += 1
        if outcome.status is Status.REJECTED:
            reporter.row_rejected()
        else:
            reporter.row_done(outcome.status)

    async with anyio.create_task_group() as tg:
        tg.start_soon(_report_rate, summary, reporter)
        await run_pipeline(
            tasks,
            worker.process,
            record,
            workers=settings.workers,
            stop=stop,
            handle_signals=True,
        )
        tg.cancel_scope.cancel()


async def _report_rate(summary: RunSummary, reporter: Reporter, window: float = 5.0) -> None:
    """Tell the reporter the rows-per-second over the last ``window`` seconds, every second."""
    history: list[tuple[float, int]] = []
    while True:
        await anyio.sleep(1.0)
        now = anyio.current_time()
        sent = sum(n for status, n in summary.counts.items() if status is not Status.REJECTED)
        history = [(t, n) for t, n in history if now - t <= window] + [(now, sent)]
        (t0, n0), (t1, n1) = history[0], history[-1]
        if t1 > t0:
            reporter.rate((n1 - n0) / (t1 - t0))


def _transition(outcome: RowOutcome) -> Transition:
    if outcome.status is Status.REJECTED:
        return Rejected(
            row=outcome.row,
            field=outcome.field,
            code=outcome.code or "rejected",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
        )
    if outcome.status is Status.FAILED:
        return Failed(
            row=outcome.row,
            code=outcome.code or "failed",
            reason=outcome.reason or "",
            request_id=outcome.request_id,
        )
    return Done(
        row=outcome.row,
        server_id=outcome.server_id,
        status=RowStatus(outcome.status),
        request_id=outcome.request_id,
    )


async def _finish(
    job: RowJob,
    api: ApiSession,
    journal: Journal,
    summary: RunSummary,
    reporter: Reporter,
) -> None:
    verify = getattr(job, "verify_and_submit", None)
    if verify is None:
        return
    counts = journal.counts()
    open_rows = sum(v for k, v in counts.items() if str(k) in {"pending", "in_flight", "failed"})
    all_accepted = counts.get("rejected", 0) == 0 and open_rows == 0  # type: ignore[call-overload]
    messages: list[str] = await verify(
        api,
        file_count=summary.totals.valid,
        file_total=summary.totals.amount,
        all_accepted=all_accepted,
    )
    for message in messages:
        reporter.message(message)
    summary.messages.extend(messages)
    summary.run_left_in_draft = getattr(job, "verified", None) is False


class RowWorker:
    """Turns one ``RowTask`` into one ``RowOutcome``; never raises for a row-level problem."""

    def __init__(
        self,
        job: RowJob,
        api: ApiSession,
        writer: AsyncJournalWriter,
        reporter: Reporter,
        summary: RunSummary,
    ) -> None:
        self._job = job
        self._api = api
        self._writer = writer
        self._reporter = reporter
        self._summary = summary

    async def process(self, task: RowTask) -> RowOutcome:
        if task.rejection is not None:
            await self._writer.record(
                Register(row=task.row, row_key=task.row_key, body_hash=None, idempotency_key=None)
            )
            return _rejected_locally(task, task.rejection)
        # Registered and marked in flight (attempt 1) in one transition, one statement.
        await self._writer.record(
            Register(
                row=task.row,
                row_key=task.row_key,
                body_hash=task.body_hash or None,
                idempotency_key=task.idempotency_key or None,
                attempt=1,
                sent_at=time.time(),
            )
        )
        attempts = Attempts()
        try:
            return await self._send(task, attempts)
        except errors.Conflict as err:
            existing = self._job.existing_id(err)
            if existing:
                return RowOutcome(
                    task.row, Status.ALREADY_EXISTED, server_id=existing, attempts=attempts.count
                )
            return _rejected_by_server(task, err, attempts)
        except errors.RowRejected as err:
            return _rejected_by_server(task, err, attempts)
        except errors.RetryableError as err:
            return _failed(task, err, attempts)

    async def _send(self, task: RowTask, attempts: Attempts) -> RowOutcome:
        if task.look_up_first:
            existing = await self._job.look_up(self._api, task)
            if existing:
                return RowOutcome(task.row, Status.ALREADY_EXISTED, server_id=existing)
        reply = await self._api.call(
            lambda: self._job.send(self._api.client, task),
            attempts=attempts,
            on_retry=self._on_retry,
        )
        return RowOutcome(
            task.row,
            Status.REPLAYED if reply.replayed else Status.CREATED,
            server_id=self._job.server_id(reply),
            request_id=reply.request_id,
            attempts=attempts.count,
        )

    def _on_retry(self, attempt: int, error: errors.RetryableError, delay: float) -> None:
        self._summary.retries += 1
        self._reporter.retrying(1)


def _rejected_locally(task: RowTask, rejection: RowRejection) -> RowOutcome:
    return RowOutcome(
        task.row,
        Status.REJECTED,
        field=rejection.field,
        code=rejection.code,
        reason=rejection.reason,
    )


def _rejected_by_server(task: RowTask, err: errors.ApiError, attempts: Attempts) -> RowOutcome:
    status = f"HTTP {err.status}" if err.status else "the server"
    return RowOutcome(
        task.row,
        Status.REJECTED,
        field=err.field,
        code=err.code or str(err.status),
        reason=f"{status}: {err.message}",
        request_id=err.request_id,
        attempts=attempts.count,
    )


def _failed(task: RowTask, err: errors.RetryableError, attempts: Attempts) -> RowOutcome:
    unknown = (
        "; the outcome is unknown, resume re-sends it under the same key"
        if attempts.indeterminate
        else "; resume will try it again"
    )
    return RowOutcome(
        task.row,
        Status.FAILED,
        code=err.code or (str(err.status) if err.status else "failed"),
        reason=f"gave up after {attempts.count} attempts: {err.message}{unknown}",
        request_id=err.request_id,
        attempts=attempts.count,
    )


def plan_tasks(
    request: RunRequest,
    job: RowJob,
    journal: Journal,
    *,
    skip: set[int],
    look_up_first: bool,
    totals: FileTotals,
) -> Iterator[RowTask]:
    """Read and validate every row; yield a task for each row not yet settled.

    Runs in the pipeline's reader thread. Every row is validated even when it is skipped, so
    duplicates and file totals are judged on the whole file, the same way on every resume.
    """
    secret = journal.job.secret
    records = iter_records(request.input_path, encoding=request.encoding)
    source = str(request.input_path)
    for item in validate_rows(records, job.model, source_name=source):
        totals.rows += 1
        if isinstance(item, Rejection):
            totals.rejected_locally += 1
            if item.row not in skip:
                yield _rejection_task(
                    item.row, item.line, secret, item.field, item.code, item.reason
                )
            continue
        problem = job.check(item.model)
        if problem is not None:
            totals.rejected_locally += 1
            if item.row not in skip:
                yield _rejection_task(
                    item.row, item.line, secret, problem.field, problem.code, problem.reason
                )
            continue
        totals.valid += 1
        totals.amount += job.amount_of(item.model)
        if item.row in skip:
            continue
        yield _send_task(request.kind, job, item.row, item.line, item.model, secret, look_up_first)


def _rejection_task(
    row: int, line: int, secret: bytes, field_name: str | None, code: str, reason: str
) -> RowTask:
    return RowTask(
        row=row,
        line=line,
        identity="",
        row_key=keyed_hash(secret, f"row:{row}"),
        body={},
        body_hash="",
        idempotency_key="",
        rejection=RowRejection(field_name, code, reason),
    )


def _send_task(
    kind: str,
    job: RowJob,
    row: int,
    line: int,
    model: Any,
    secret: bytes,
    look_up_first: bool,
) -> RowTask:
    identity = str(model.identity)
    body = job.body_for(model)
    body_hash = body_sha256(body)
    return RowTask(
        row=row,
        line=line,
        identity=identity,
        row_key=keyed_hash(secret, identity),
        body=body,
        body_hash=body_hash,
        idempotency_key=idempotency_key(secret, kind, identity, body_hash),
        look_up_first=look_up_first,
    )


def resume_request(
    run_dir: Path,
    *,
    sandbox: bool,
    ca_bundle: Path | None,
    token_file: Path | None,
    retry_rejected: bool,
    json_logs: bool,
    allow_token_change: bool = False,
) -> RunRequest:
    """Rebuild the original request from the journal of ``run_dir``."""
    from flexpay_batch.journal.status import status_snapshot

    snapshot = status_snapshot(run_dir)
    job = snapshot.job
    config: dict[str, Any] = dict(job.config)
    was_sandbox = job.base_url == SANDBOX
    if was_sandbox != sandbox and was_sandbox:
        sandbox = True
    stored = settings_from_journal(config)
    settings = replace(
        stored,
        base_url=DEFAULT_BASE_URL if was_sandbox else job.base_url,
        ca_bundle=ca_bundle or stored.ca_bundle,
        token_file=token_file,
    )
    parameters: dict[str, Any] = dict(config.get("job") or {})
    return RunRequest(
        job_factory=_job_factory(job.kind, parameters),
        kind=job.kind,
        input_path=Path(job.input_path),
        settings=settings,
        sandbox=sandbox,
        encoding=config.get("encoding"),
        retry_rejected=retry_rejected,
        json_logs=json_logs,
        run_dir=run_dir,
        parameters=parameters,
        allow_token_change=allow_token_change,
    )


def _job_factory(kind: str, parameters: dict[str, Any]) -> Callable[[JournalMeta], RowJob]:
    if kind == "onboarding":
        from flexpay_batch.jobs.onboarding import OnboardingJob

        return lambda meta: OnboardingJob()
    from flexpay_batch.jobs.payroll import payroll_job_from_parameters

    return lambda meta: payroll_job_from_parameters(parameters, meta)


__all__ = ["RunRequest", "RunSummary", "execute_request", "resume_request", "run_job"]
