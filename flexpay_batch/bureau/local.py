"""``run MANIFEST``: every job of a manifest in this process, for a small bureau on one machine.

::

    jobs = prepare_jobs(manifest_path, env)      # every check; nothing sent, nothing written
    outcomes, interrupted = anyio.run(partial(run_local, jobs, env=env, board=board))
    exit_code = overall_exit_code(outcomes, interrupted=interrupted)

``prepare_jobs`` checks everything a job needs before anything is sent: the manifest, each
file (a regular, readable file with the columns of its kind; its SHA-256), each token, each
job's settings and base URL. Any problem is ``errors.ConfigError`` (exit 2) naming the job and
the manifest key, and no run directory is made.

``run_local`` runs the jobs through ``run_bureau_job`` (the function a queue worker calls too),
at most ``concurrency`` at a time, in the order ``bureau.schedule`` decides: organisations take
turns, an organisation's jobs run in manifest order, and jobs of one token never run at the
same time (each run has its own limiter; two at once would exceed the token's limit). It
watches SIGINT/SIGTERM/SIGHUP once for all of them: the first stops every job gracefully
(requests in flight finish, outputs are written) and starts no other; a second cancels the
requests in flight (``StopControl.request(at_once=True)``: what arrived is journaled, the
outputs written); a third cancels everything at once. A job that fails (its token revoked)
stops alone, through its own ``StopControl.child``.

Without ``FLEXPAY_KEY_SECRET`` each job's journal keeps the random secret it began with, so
running the same manifest again on this host resumes every job from its run directory
(``<state dir>/bureau/<org>/<job id>``); with it, the job secrets are derived from it, as on
a queue's workers.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from flexpay_batch.api.client import make_ssl_context, validate_base_url
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.bureau.board import Board
from flexpay_batch.bureau.job import (
    BureauJob,
    bureau_job,
    job_run_dir,
    job_settings,
    job_token,
    run_bureau_job,
)
from flexpay_batch.bureau.manifest import in_manifest_words, load_manifest
from flexpay_batch.bureau.outcome import JobLabel, JobOutcome
from flexpay_batch.bureau.schedule import Schedule, Slot
from flexpay_batch.core import errors
from flexpay_batch.core.keys import token_fingerprint
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.pipeline import StopControl, watch_stop_signals
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import job_spec

#: Jobs run at the same time by default (each of another organisation and token).
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class LocalJob:
    """A manifest job checked and ready to run here: the job and its token's fingerprint."""

    job: BureauJob
    #: Jobs of one lane (one token) never run at the same time.
    lane: str

    @property
    def label(self) -> JobLabel:
        assert self.job.number is not None
        return JobLabel(self.job.number, self.job.org, self.job.kind)


def prepare_jobs(
    manifest: Path, env: Mapping[str, str], *, state_dir: Path, on_this_host: bool = True
) -> list[LocalJob]:
    """Every job of ``manifest`` checked for a run on this host (see the module docstring).

    ``on_this_host=False`` checks them for other hosts (a job queue's workers): not the
    tokens nor the CA bundles, which live there, and the settings from the manifest alone
    (``env`` is not this host's business then); each job's lane is then its organisation.

    Raises ``errors.ConfigError`` naming each job and key at fault (all of them, the first
    one first), before anything is written or sent.
    """
    path = manifest.resolve()
    entries = load_manifest(path).jobs
    problems: list[errors.FlexPayBatchError] = []
    jobs: list[LocalJob] = []
    seen: dict[str, int] = {}
    owners: dict[str, LocalJob] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            job = _checked(
                bureau_job(entry, number=number, manifest=path), env, state_dir, on_this_host
            )
        except errors.FlexPayBatchError as exc:
            problems.append(exc)
            continue
        first = seen.setdefault(job.job.job_id, number)
        if first != number:
            problems.append(
                errors.ConfigError(
                    f"{job.job.describe()}: the same job as job {first} (organisation, kind, "
                    "file and parameters): it would run twice into one run directory"
                )
            )
        owner = owners.setdefault(job.lane, job)
        if owner.job.org != job.job.org:
            problems.append(_shared_token(job, owner))
        jobs.append(job)
    if problems:
        more = "".join(f"\n  also: {problem.message}" for problem in problems[1:])
        raise errors.ConfigError(problems[0].message + more, hint=problems[0].hint)
    return jobs


def _shared_token(job: LocalJob, owner: LocalJob) -> errors.ConfigError:
    """Two organisations, one token: one of them would be written into the other's books."""
    source = _token_source(job.job)
    return errors.ConfigError(
        f"{job.job.describe()}: {source} holds the same token as {owner.job.describe()}'s "
        f"{_token_source(owner.job)}: a token belongs to one organisation, so "
        f"{job.job.org}'s rows would be sent to {owner.job.org}'s",
        hint="Put each organisation's own token in its variable (or file), then run again.",
    )


def shared_files(jobs: Sequence[LocalJob]) -> list[str]:
    """A warning for each job whose file (by SHA-256) an earlier job of another organisation
    has too: usually a copied ``[[jobs]]`` table whose ``file`` was not changed."""
    origins: dict[str, LocalJob] = {}
    warnings = []
    for job in jobs:
        origin = origins.setdefault(job.job.file_sha256, job)
        if origin.job.org != job.job.org:
            warnings.append(
                f"{job.job.describe()}: file: the same content as {origin.job.describe()}'s "
                f"file: {origin.job.org}'s rows are sent to {job.job.org} as well"
            )
    return warnings


def _token_source(job: BureauJob) -> str:
    if job.token_env is not None:
        return f"token_env {job.token_env}"
    return f"token_file {job.token_file}"


def _checked(
    job: BureauJob, env: Mapping[str, str], state_dir: Path, on_this_host: bool
) -> LocalJob:
    where = job.describe()
    try:
        check_header(job_spec(job.engine_kind), Path(job.file), encoding=None)
    except errors.FlexPayBatchError as exc:
        raise errors.ConfigError(f"{where}: file: {exc.message}", hint=exc.hint) from None
    if not on_this_host:
        _checked_settings(job, {}, state_dir)
        return LocalJob(job, lane=job.org)
    token = job_token(job, env)
    install_redaction(token)  # from now on no message or traceback can show it
    settings = _checked_settings(job, env, state_dir)
    if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
        raise errors.ConfigError(
            f"{where}: ca_bundle: {settings.ca_bundle} is not a file "
            "(from the manifest or FLEXPAY_CA_BUNDLE)"
        )
    try:
        make_ssl_context(settings.ca_bundle)  # a file that is not PEM fails here, not mid-run
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"{where}: ca_bundle: {exc.message}", hint=exc.hint) from None
    return LocalJob(job, lane=token_fingerprint(token))


def _checked_settings(job: BureauJob, env: Mapping[str, str], state_dir: Path) -> Settings:
    """The job's settings (manifest keys over ``env``), the base URL among them, valid."""
    try:
        settings = job_settings(job, env, run_dir=job_run_dir(job, state_dir))
        validate_base_url(settings.base_url)
    except errors.ConfigError as exc:
        raise errors.ConfigError(
            f"{job.describe()}: {in_manifest_words(exc.message)}",
            hint=in_manifest_words(exc.hint),
        ) from None
    return settings


@dataclass
class _Run:
    """One bureau run's shared state: what ``run_local`` and its job tasks both use."""

    jobs: Sequence[LocalJob]
    env: Mapping[str, str]
    state_dir: Path
    store: RedisStore | None
    key_secret: bytes | None
    board: Board
    stop: StopControl
    allow_token_change: bool = False
    outcomes: dict[int, JobOutcome] = field(default_factory=dict)


async def run_local(
    jobs: Sequence[LocalJob],
    *,
    env: Mapping[str, str],
    state_dir: Path,
    board: Board,
    store: RedisStore | None = None,
    key_secret: bytes | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: StopControl | None = None,
    handle_signals: bool = True,
    allow_token_change: bool = False,
) -> tuple[list[JobOutcome], bool]:
    """Run ``jobs`` (from ``prepare_jobs``) to their ends; return each one's outcome, in
    manifest order, and whether the run was stopped (a signal or ``stop``) before some job
    ended by itself.

    ``store`` shares every token's limits with other processes (``--limiter-url``).
    ``handle_signals``: watch SIGINT/SIGTERM/SIGHUP (only the main thread's loop can).
    ``allow_token_change``: jobs whose journals began with another token (rotated) go on.
    """
    if concurrency < 1:
        raise errors.UsageError("--concurrency must be at least 1")
    stop = stop or StopControl()
    run = _Run(jobs, env, state_dir, store, key_secret, board, stop, allow_token_change)
    schedule = Schedule([Slot(job.job.org, job.lane) for job in jobs])
    board.open()
    for warning in shared_files(jobs):
        board.message(warning, logging.WARNING)
    try:
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(_watch_signals, run, outer)
            await _drive(run, schedule, concurrency)
            outer.cancel_scope.cancel()
    finally:
        _not_started(run)
        outcomes = [run.outcomes[index] for index in range(len(jobs))]
        board.close(outcomes)
    # A stop that came once every job had ended by itself cut nothing short.
    return outcomes, stop.requested and any(outcome.exit_code == 130 for outcome in outcomes)


async def _drive(run: _Run, schedule: Schedule, concurrency: int) -> None:
    """Start jobs as the schedule allows, until none runs and none may start."""
    send, receive = anyio.create_memory_object_stream[int](len(run.jobs))
    async with anyio.create_task_group() as tg, send, receive:
        while True:
            while not run.stop.requested and schedule.running < concurrency:
                index = schedule.next_ready()
                if index is None:
                    break
                tg.start_soon(_one, run, index, send.clone())
            if schedule.running == 0:
                return
            index = await receive.receive()
            # After the operator's stop the organisation's next jobs wait (for a re-run);
            # they are skipped only when their own organisation's job stopped.
            stopped = run.outcomes[index].stopped and not run.stop.requested
            for skipped in schedule.finished(index, stopped=stopped):
                _skip(run, skipped, because=run.jobs[index])


def _skip(run: _Run, index: int, *, because: LocalJob) -> None:
    job = run.jobs[index]
    why = f"not run: {because.label.describe()} of the same organisation stopped first"
    outcome = JobOutcome.not_run(job.label, job.job.job_id, "skipped", why)
    run.outcomes[index] = outcome
    run.board.ended(outcome)


def _not_started(run: _Run) -> None:
    """Every job without an outcome never started: the run was stopped first."""
    for index, job in enumerate(run.jobs):
        if index in run.outcomes:
            continue
        outcome = JobOutcome.not_run(
            job.label, job.job.job_id, "waiting", "not started: the run was stopped first"
        )
        run.outcomes[index] = outcome


async def _one(run: _Run, index: int, done: MemoryObjectSendStream[int]) -> None:
    """Run job ``index`` and record its outcome; never raises but a cancellation."""
    local = run.jobs[index]
    job, label = local.job, local.label
    run_dir = job_run_dir(job, run.state_dir)
    async with done:
        try:
            summary = await run_bureau_job(
                job,
                env=run.env,
                state_dir=run.state_dir,
                store=run.store,
                key_secret_bytes=run.key_secret,
                reporter=run.board.reporter(label),
                stop=run.stop.child(),
                allow_token_change=run.allow_token_change,
            )
            outcome = JobOutcome.from_summary(label, job.job_id, summary)
        except errors.FlexPayBatchError as exc:
            outcome = JobOutcome.from_error(label, job.job_id, exc, run_dir=run_dir)
        except (OSError, sqlite3.Error) as exc:
            fault: BaseException = errors.local_fault(exc) if errors.is_local_fault(exc) else exc
            outcome = JobOutcome.from_error(label, job.job_id, fault, run_dir=run_dir)
        except Exception as exc:  # a bug in one job must not take the other organisations down
            outcome = JobOutcome.from_error(label, job.job_id, exc, run_dir=run_dir)
        except BaseException:
            stopped = errors.RunInterrupted("stopped at once: requests in flight were cancelled")
            run.outcomes[index] = JobOutcome.from_error(label, job.job_id, stopped, run_dir=run_dir)
            raise
        run.outcomes[index] = outcome
        run.board.ended(outcome)
        await done.send(index)


async def _watch_signals(run: _Run, outer: TaskGroup) -> None:
    """First SIGINT/SIGTERM/SIGHUP: every job stops gracefully. A second: requests in flight
    are cancelled (what arrived is journaled, outputs written). A third: everything at once."""

    def react(count: int, name: str) -> bool:
        if count == 1:
            run.board.message(
                f"{name}: stopping every job… letting requests in flight finish "
                "(Ctrl-C again to stop at once)",
                logging.WARNING,
            )
            run.stop.request(
                errors.RunInterrupted(
                    f"stopped by {name}: requests in flight were allowed to finish"
                )
            )
        elif count == 2:
            run.stop.request(
                errors.RunInterrupted(
                    f"stopped by a second {name}: requests in flight were cancelled; "
                    "their rows stay open and running the manifest again re-sends them "
                    "under the same idempotency key"
                ),
                at_once=True,
            )
        else:
            outer.cancel_scope.cancel()
            return False
        return True

    await watch_stop_signals(react)


__all__ = ["DEFAULT_CONCURRENCY", "LocalJob", "prepare_jobs", "run_local", "shared_files"]
