"""A bureau worker: takes jobs off saq's queue and runs each with ``run_bureau_job``.

::

    async with open_queue(url) as queue, limiter_store_at(url) as store:
        worker = BureauWorker(queue, store, WorkerConfig(env=os.environ, ...), say=print)
        await worker.run()                  # until worker.request_stop(...) and jobs settle

The loop is ours, the queue is saq's (``bureau.queue``): ``concurrency`` slots each block on
saq's ``dequeue`` (an atomic BLMOVE from the queued to the active list) and at once take a
hold on the job (``bureau.sweep``), and one upkeep task runs the sweep every
``sweep_interval`` seconds (saq's lock makes it one sweep per interval across all workers): it
hands on the jobs nobody holds, on Redis's clock, not the hosts'. Beside each running job a
heartbeat task, every third of the job's ``heartbeat`` and at least every
``PROGRESS_INTERVAL`` seconds:

1. refreshes the token's lease (``bureau.lease``): one running job per token, across workers,
   and the job's hold;
2. checks that saq still records the job as running here (not swept and handed on);
3. writes the progress (``bureau.result``: rows done/total) to the job's ``meta``, which
   touches it for saq.

A job whose token is busy, or whose organisation's job before it has not ended, is put back
at the end of the queue without spending an attempt; one whose earlier job stopped is
skipped. ``request_stop`` (the first SIGTERM/SIGINT) stops taking jobs and asks every running
job to stop gracefully (requests in flight finish, the journal is flushed, outputs written;
the second signal: at once, requests in flight cancelled); each is then put back on the
queue, so another worker resumes it now, not after a heartbeat timeout. A job that this
worker lost (swept after missed heartbeats, or its lease gone) is stopped gracefully and left
to its new worker: the derived idempotency keys make whatever both sent replay, not repeat
(docs/bureau.md, "Exactly once").
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

import anyio
from redis.exceptions import RedisError
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.queue.redis import RedisQueue

from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.bureau.job import BureauJob, job_run_dir, job_token, run_bureau_job
from flexpay_batch.bureau.lease import TokenLeases
from flexpay_batch.bureau.queue import DEFAULT_SWEEP, SKIPPED, now_ms, open_queue
from flexpay_batch.bureau.result import JobProgress, Outcome, Say
from flexpay_batch.bureau.sweep import EntryMoves, job_holds, sweep
from flexpay_batch.core import errors
from flexpay_batch.core.keys import token_fingerprint
from flexpay_batch.core.redact import format_exception_redacted
from flexpay_batch.engine.limiting import limiter_store_at
from flexpay_batch.engine.pipeline import StopControl
from flexpay_batch.journal.files import JOURNAL_NAME, WriterLock

#: Seconds one ``dequeue`` blocks before the slot looks at the stop flag again.
DEQUEUE_WAIT: Final = 1.0
#: Seconds a slot pauses once every job it sees is of a busy token (it went round the queue).
BUSY_PAUSE: Final = 1.0
#: Seconds between two progress writes at most (the heartbeat may be longer): what
#: `runs --queue` and `enqueue --wait` show is never older than this.
PROGRESS_INTERVAL: Final = 2.0
#: Seconds allowed for putting a job back or releasing a lease while shutting down.
SETTLE_TIMEOUT: Final = 10.0


def worker_id() -> str:
    """``host-pid-xxxx``: unique per worker process, readable in `runs --queue`."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs besides the queue: its environment (tokens, ``FLEXPAY_*``), its
    state directory, the bureau's key secret, how many jobs at once, the sweep interval."""

    env: Mapping[str, str] = field(repr=False)
    state_dir: Path
    key_secret: bytes = field(repr=False)
    concurrency: int = 2
    sweep_interval: int = DEFAULT_SWEEP
    id: str = field(default_factory=worker_id)


class Taken(Enum):
    """What became of a dequeued job."""

    RAN = "ran"
    DEFERRED = "deferred"  # its token was busy: put back at the end of the queue
    STALE = "stale"  # a copy of a job that is running elsewhere or finished: dropped


@dataclass(eq=False)
class _Running:
    job: Job
    stop: StopControl
    progress: JobProgress
    #: Another worker owns the job now (swept after missed heartbeats, or the lease lost):
    #: this worker leaves the saq job alone when its run ends.
    lost: bool = False


class BureauWorker:
    """Runs bureau jobs from ``queue`` until ``request_stop``; see the module docstring."""

    def __init__(
        self, queue: RedisQueue, store: RedisStore | None, config: WorkerConfig, say: Say
    ) -> None:
        self.queue = queue
        self.store = store
        self.config = config
        self.leases = TokenLeases(queue.redis)
        #: This worker's hold on each job it dequeued (``bureau.sweep``): while it lasts, no
        #: sweep hands the job on, whatever the hosts' clocks say.
        self.holds = job_holds(queue.redis)
        self._moves = EntryMoves(queue)
        self._say = say
        self._stopping = anyio.Event()
        self._at_once = False
        self._queue_lost = False
        self._running: set[_Running] = set()
        #: Why this worker stopped taking jobs on its own (the queue's key check changed).
        self.refused: errors.ConfigError | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    def request_stop(self, reason: str, *, at_once: bool = False) -> None:
        """Take no more jobs; stop the running ones, then put them back on the queue.

        Gracefully (requests in flight finish), or ``at_once``: requests in flight are
        cancelled, their rows left open for the next worker to re-send under the same keys.
        """
        self._stopping.set()
        self._at_once = self._at_once or at_once
        for running in self._running:
            running.stop.request(errors.RunInterrupted(reason), at_once=at_once)

    async def run(self) -> None:
        """Take and run jobs until ``request_stop``; returns once every running job settled."""
        async with anyio.create_task_group() as upkeep:
            upkeep.start_soon(self._sweep_forever)
            async with anyio.create_task_group() as slots:
                for _ in range(self.config.concurrency):
                    slots.start_soon(self._slot)
            upkeep.cancel_scope.cancel()

    async def _sweep_forever(self) -> None:
        interval = self.config.sweep_interval
        while True:
            try:
                # Again at every sweep: a Redis restarted without its data forgot the check
                # value, and a worker with another secret must not be the one to set it.
                await check_key_secret(self.queue, self.config.key_secret)
                swept = await sweep(self.queue, self.holds, lock=interval)
            except errors.ConfigError as exc:
                # Which secret is right is not known here: take no more jobs, but finish the
                # running ones rather than hand them to a worker that may have the other.
                self._say(f"{exc.message}: taking no more jobs; finishing the running ones")
                self.refused = exc
                self._stopping.set()
                return
            except RedisError as exc:
                self._queue_down(exc)
            except Exception as exc:  # upkeep must not take the worker down (saq's own doesn't)
                self._say(f"sweep failed ({type(exc).__name__}); trying again in {interval} s")
            else:
                self._queue_up()
                for job_id in swept:
                    self._say(f"swept {self.queue.job_key_from_id(job_id)}: back on the queue")
            await anyio.sleep(interval)

    async def _slot(self) -> None:
        deferred: set[str] = set()
        while not self._stopping.is_set():
            try:
                job = await self.queue.dequeue(timeout=DEQUEUE_WAIT)
            except RedisError as exc:
                self._queue_down(exc)
                await anyio.sleep(DEQUEUE_WAIT)
                continue
            self._queue_up()
            if job is None:
                continue
            if self._stopping.is_set():
                # Not held: only the entry goes back (it may be a copy of a running job).
                with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
                    await self._moves.back_to_queue(job.id)
                return
            try:
                taken = await self.take(job)
            except RedisError as exc:
                # The job stays "running" in Redis; the sweep hands it on after its heartbeat.
                self._say(f"{job.key}: the queue stopped answering ({type(exc).__name__})")
                continue
            if taken is Taken.DEFERRED:
                if job.key in deferred:
                    # Every job seen since the last one run was of a busy token: pause.
                    deferred.clear()
                    await anyio.sleep(BUSY_PAUSE)
                deferred.add(job.key)
            else:
                deferred.clear()

    def _queue_down(self, exc: RedisError) -> None:
        """Say once (not once per slot and second) that the queue stopped answering."""
        if not self._queue_lost:
            self._queue_lost = True
            self._say(f"the queue does not answer ({type(exc).__name__}); waiting for it")

    def _queue_up(self) -> None:
        if self._queue_lost:
            self._queue_lost = False
            self._say("the queue answers again")

    async def take(self, job: Job) -> Taken:
        """Hold ``job``, take its token's lease, mark it running here and run it; or put it
        back.

        The hold (``bureau.sweep``) comes first, right after the dequeue: a job held by
        another worker (it is running or starting it, or putting it back) is a copy, put back
        at the end of the queue untouched. An entry whose job is finished is dropped; one
        whose job is recorded running but held by nobody is left to the sweep. A job whose
        token is busy goes back to the end of the queue, its attempts unchanged.
        """
        holder = f"{self.id}/{job.key}"
        if not await self.holds.acquire(job.key, holder, ttl=_lease_ttl(job)):
            await self._moves.back_to_queue(job.id)
            return Taken.DEFERRED
        try:
            return await self._take_held(job, holder)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
                await self.holds.release(job.key, holder)

    async def _take_held(self, job: Job, holder: str) -> Taken:
        # What the queue records now, not what the dequeued entry said a moment ago.
        stored = await self.queue.job(job.key)
        if stored is None:
            await self._moves.drop(job.id)
            return Taken.STALE
        job = stored
        if job.status in TERMINAL_STATUSES:
            await self._moves.drop(job.id)
            return Taken.STALE
        if job.status not in (Status.NEW, Status.QUEUED):
            # Recorded running, held by nobody: its worker died; the sweep hands it on (this
            # entry keeps it on the active list, where the sweep looks).
            return Taken.STALE
        job.worker_id = self.id
        try:
            bureau_job = BureauJob.from_json(str((job.kwargs or {})["job"]))
        except errors.FlexPayBatchError as exc:
            await self._finish(job, Outcome.failed(exc), JobProgress(job.key, self._say))
            return Taken.RAN
        except (KeyError, TypeError, ValueError):
            malformed = errors.UsageError(f"{job.key}: the queued job is not a bureau job")
            await self._finish(job, Outcome.failed(malformed), JobProgress(job.key, self._say))
            return Taken.RAN
        try:
            token = job_token(bureau_job, self.config.env)
        except errors.FlexPayBatchError as exc:
            given_up = await self._no_token_here(job, exc)
            if given_up is None:
                return Taken.DEFERRED
            await self._finish(job, Outcome.failed(given_up), JobProgress(job.key, self._say))
            return Taken.RAN
        waiting = await self._earlier_job(job, bureau_job)
        if waiting is not None:
            if waiting is Taken.DEFERRED:
                await self._put_back(job, error=None)
            return waiting
        journal = job_run_dir(bureau_job, self.config.state_dir) / JOURNAL_NAME
        if await anyio.to_thread.run_sync(_journal_held, journal):
            # A run of this job on this host is still stopping (its queue record was lost,
            # e.g. Redis restarted empty, and the job enqueued again): wait for it, rather
            # than fail on its journal's lock.
            await self._put_back(job, error=None)
            return Taken.DEFERRED
        scope = token_fingerprint(token)
        if not await self.leases.acquire(scope, holder, ttl=_lease_ttl(job)):
            await self._put_back(job, error=None)
            return Taken.DEFERRED
        try:
            job.started = now_ms()
            job.attempts += 1
            await job.update(status=Status.ACTIVE)
            await self._run(job, bureau_job, scope, holder)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
                await self.leases.release(scope, holder)
        return Taken.RAN

    async def _no_token_here(
        self, job: Job, exc: errors.FlexPayBatchError
    ) -> errors.FlexPayBatchError | None:
        """This host lacks the job's token (a host-specific fault): None once the job is put
        back for a worker that has it; the error to fail the job with once workers lacking
        it have held it back for a whole heartbeat (timed on Redis's clock)."""
        meta = job.meta or {}
        now, _ = await self.queue.redis.time()
        since = int(meta.get("no_token_since") or now)
        lacking = [str(worker) for worker in meta.get("no_token_on", [])]
        if now - since >= max(job.heartbeat, 1):
            hosts = ", ".join(sorted({*lacking, self.id}))
            return errors.ConfigError(
                f"{exc.message} (nor on the other workers that took it in {job.heartbeat} s: "
                f"{hosts})",
                hint=exc.hint,
            )
        if self.id not in lacking:
            self._say(f"{job.key}: {exc.message}; put back for a worker that has it")
            lacking = [*lacking, self.id][-20:]
        job.meta = {**meta, "no_token_since": since, "no_token_on": lacking}
        await self._put_back(job, error=None)
        return None

    async def _earlier_job(self, job: Job, bureau_job: BureauJob) -> Taken | None:
        """``DEFERRED`` while the organisation's job before this one (``meta["after"]``) has
        not ended; ``RAN`` once this one is finished as skipped because that one stopped (a
        payroll after a stopped onboarding would only be rejected); None: go ahead."""
        after = (job.meta or {}).get("after")
        earlier = None if not after else await self.queue.job(str(after))
        if earlier is None or earlier.status == Status.COMPLETE:
            return None
        if earlier.status not in TERMINAL_STATUSES:
            return Taken.DEFERRED
        skipped = Outcome(
            exit_code=1,
            stopped=SKIPPED,
            message=f"skipped: {earlier.key}, the job of {bureau_job.org} before it, stopped; "
            "enqueue the manifest again once it is fixed",
        )
        await self._finish(job, skipped, JobProgress(job.key, self._say))
        return Taken.RAN

    async def _run(self, job: Job, bureau_job: BureauJob, scope: str, holder: str) -> None:
        progress = JobProgress(job.key, self._say)
        running = _Running(job, StopControl(), progress)
        self._running.add(running)
        if self._stopping.is_set():
            stopping = errors.RunInterrupted("the worker is stopping")
            running.stop.request(stopping, at_once=self._at_once)
        self._say(
            f"{job.key}: running ({bureau_job.org}, {bureau_job.kind}, attempt {job.attempts})"
        )
        try:
            async with anyio.create_task_group() as heart:
                heart.start_soon(self._heartbeat, running, scope, holder)
                outcome = await self._outcome(bureau_job, running)
                heart.cancel_scope.cancel()
        finally:
            self._running.discard(running)
        with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
            await self._settle(running, outcome)

    async def _outcome(self, bureau_job: BureauJob, running: _Running) -> Outcome:
        try:
            summary = await run_bureau_job(
                bureau_job,
                env=self.config.env,
                state_dir=self.config.state_dir,
                store=self.store,
                key_secret_bytes=self.config.key_secret,
                reporter=running.progress,
                stop=running.stop,
            )
        except errors.FlexPayBatchError as exc:
            return Outcome.failed(exc)
        except Exception as exc:  # a bug: the job fails, the worker goes on with others
            self._say(f"{running.job.key}: internal error\n{format_exception_redacted(exc)}")
            return Outcome.failed(errors.InternalError(f"internal error ({type(exc).__name__})"))
        return Outcome.of(summary)

    async def _settle(self, running: _Running, outcome: Outcome) -> None:
        job = running.job
        gone = await self._not_mine(job)
        if running.lost or gone is not None:
            self._say(f"{job.key}: stopped; {gone or 'another worker has it now'}")
            return
        if outcome.interrupted and self._stopping.is_set():
            job.attempts -= 1  # a shutdown is not the job's failure
            job.meta = {**job.meta, **running.progress.meta()}
            await self._put_back(job, error=f"released by {self.id} at shutdown")
            self._say(f"{job.key}: checkpointed and put back on the queue")
            return
        await self._finish(job, outcome, running.progress)

    async def _finish(self, job: Job, outcome: Outcome, progress: JobProgress) -> None:
        status = Status.COMPLETE if outcome.stopped is None else Status.FAILED
        job.meta = {**job.meta, **progress.meta()}
        await job.finish(status, result=outcome.result(progress), error=outcome.message)
        self._say(f"{job.key}: {status.value} (exit {outcome.exit_code})")

    async def _put_back(self, job: Job, *, error: str | None) -> None:
        """``job`` back at the end of the queue (saq's ``retry``, with no delay)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
            await self.queue.retry(job, error=error)

    async def _not_mine(self, job: Job) -> str | None:
        """None while the queue records ``job`` as this run's; else why not."""
        stored = await self.queue.job(job.key)
        if stored is None:
            return (
                "the queue no longer holds this job (did Redis restart without its data?); "
                "enqueue the manifest again to finish it: rows already sent replay, none repeats"
            )
        if (
            stored.worker_id == self.id
            and stored.status == Status.ACTIVE
            and stored.started == job.started
        ):
            return None
        return "another worker has it now"

    async def _heartbeat(self, running: _Running, scope: str, holder: str) -> None:
        """Every third of the heartbeat (or ``PROGRESS_INTERVAL``): the lease refreshed, the
        job checked and touched with the progress."""
        job = running.job
        ttl = _lease_ttl(job)
        last_ok = time.monotonic()
        while True:
            await anyio.sleep(min(ttl / 3, PROGRESS_INTERVAL))
            try:
                if not await self.leases.refresh(scope, holder, ttl=ttl):
                    self._lose(running, "its token's lease expired")
                    return
                if not running.lost and not await self.holds.refresh(job.key, holder, ttl=ttl):
                    # Keep the token's lease until this run has stopped: the next worker waits.
                    self._lose(running, "its hold on the job expired")
                if not running.lost:
                    gone = await self._not_mine(job)
                    if gone is None:
                        await job.update(meta={**job.meta, **running.progress.meta()})
                    else:
                        # Keep the lease until this run has stopped: the next worker waits.
                        self._lose(running, gone)
                last_ok = time.monotonic()
            except RedisError as exc:
                if time.monotonic() - last_ok > ttl:
                    self._lose(running, f"Redis did not answer for {ttl:.0f} s ({exc})")
                    return

    def _lose(self, running: _Running, why: str) -> None:
        running.lost = True
        self._say(f"{running.job.key}: stopping: {why}")
        running.stop.request(errors.RunInterrupted(f"stopped: {why}"))


def _journal_held(journal: Path) -> bool:
    """Whether a run on this host holds ``journal`` now (an unreadable one: no; the run
    itself then says what is wrong with it)."""
    try:
        return WriterLock.is_held(journal)
    except OSError:
        return False


def _lease_ttl(job: Job) -> float:
    """The lease lasts as long as the job may go without a heartbeat."""
    return float(max(job.heartbeat, 1))


#: The Redis key of the key secret's check value (``key_check``).
KEY_CHECK_KEY: Final = "flexpay-batch:bureau:key-check"
_KEY_CHECK_DOMAIN: Final = b"fpb.bureau.key-check.v1\x00"


def key_check(secret: bytes) -> str:
    """A check value of the bureau's key secret: 64 bits of HMAC(secret, a fixed message),
    so workers can tell they share one secret without it (or anything derived for a job)
    being in Redis."""
    return hmac.new(secret, _KEY_CHECK_DOMAIN, hashlib.sha256).hexdigest()[:16]


async def check_key_secret(queue: RedisQueue, secret: bytes) -> None:
    """Refuse to work with another key secret than the queue's first worker had.

    A worker with another secret would send a job it takes over under new idempotency keys,
    so rows the first worker sent would apply again. ``errors.ConfigError`` (exit 2).
    """
    mine = key_check(secret)
    await queue.redis.set(KEY_CHECK_KEY, mine, nx=True)
    stored = await queue.redis.get(KEY_CHECK_KEY)
    theirs = stored.decode("ascii") if isinstance(stored, bytes) else stored
    if theirs != mine:
        raise errors.ConfigError(
            "FLEXPAY_KEY_SECRET is not the one the other workers of this queue use",
            hint="Every worker needs the same secret, or a job taken over would be sent "
            f"under new idempotency keys. (A new bureau on this Redis: delete {KEY_CHECK_KEY}.)",
        )


async def serve(queue_url: str, *, limiter_url: str | None, config: WorkerConfig, say: Say) -> None:
    """Run a worker on the queue at ``queue_url`` until SIGTERM/SIGINT.

    The first signal stops taking jobs and checkpoints the running ones (requests in flight
    finish), which go back on the queue for another worker; the second cancels the requests
    in flight and does the same at once, then raises ``RunInterrupted`` (exit 130); a third
    exits there and then, leaving the jobs to the sweep after their heartbeat. Limits are
    shared through ``limiter_url`` (default: the queue's Redis).
    """
    async with (
        open_queue(queue_url) as queue,
        limiter_store_at(limiter_url or queue_url) as store,
    ):
        await check_key_secret(queue, config.key_secret)
        worker = BureauWorker(queue, store, config, say)
        say(f"worker {worker.id}: {config.concurrency} jobs at once; Ctrl-C or SIGTERM to stop")
        received: list[str] = []
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, signals, worker, say, received)
                await worker.run()
                tg.cancel_scope.cancel()
        say(f"worker {worker.id}: stopped")
    if worker.refused is not None:
        raise worker.refused
    if len(received) > 1:
        raise errors.RunInterrupted(
            f"stopped at once by {received[1]}: requests in flight were cancelled",
            hint="Their rows are re-sent under the same keys by the worker that takes the job.",
        )


async def _watch_signals(
    signals: AsyncIterator[int], worker: BureauWorker, say: Say, received: list[str]
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        received.append(name)
        if len(received) == 1:
            say(
                f"{name}: taking no more jobs; checkpointing {worker.running} running jobs and "
                "putting them back on the queue (send it again to stop at once)"
            )
            worker.request_stop(f"stopped by {name}")
        elif len(received) == 2:
            say(
                f"{name} again: cancelling requests in flight and putting the jobs back now "
                "(once more to exit without putting them back)"
            )
            worker.request_stop(f"stopped at once by {name}", at_once=True)
        else:
            say(f"{name}: exiting now; other workers take the jobs after their heartbeat")
            os._exit(130)


__all__ = [
    "KEY_CHECK_KEY",
    "BureauWorker",
    "Taken",
    "WorkerConfig",
    "check_key_secret",
    "key_check",
    "serve",
    "worker_id",
]
