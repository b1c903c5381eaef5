"""Bureau jobs on saq's Redis queue: open it, enqueue jobs, read their state.

::

    async with open_queue("redis://10.0.0.5:6379/0") as queue:
        added = await enqueue_jobs(queue, jobs, heartbeat=30)    # [(job id, newly added?)]
        views = await list_jobs(queue)                            # every job, for `runs`

Why saq and how its semantics are used is in docs/bureau.md ("Why saq"). In short: a worker
holds each job it dequeued by a key that expires ``heartbeat`` seconds after its last refresh
(on Redis's clock, ``bureau.sweep``), and the sweep that any worker runs every few seconds puts
a job nobody holds back on the queue; the worker's heartbeat task (``bureau.worker``) refreshes
the hold every ``heartbeat / 3`` seconds while it runs, so only a dead (or cut-off) worker's
job is taken over.

A saq job's ``key`` is the ``BureauJob.job_id`` (deterministic), so the same manifest enqueued
twice while its jobs are queued or running adds nothing (saq's enqueue script refuses a key
that is still incomplete). What goes into Redis: the ``BureauJob`` wire form (no token, no
amount, no row), progress counts in ``meta``, and a result of counts, an exit code and the
stop message. Never a token, a name or an amount.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from redis.exceptions import AuthenticationError, NoPermissionError, RedisError
from saq.job import Job, Status
from saq.queue.redis import RedisQueue

from flexpay_batch.api.ratelimit.redis_store import store_address
from flexpay_batch.bureau.job import BureauJob, state_root
from flexpay_batch.bureau.local import prepare_jobs
from flexpay_batch.core import errors

#: The saq queue's name: its keys are ``saq:flexpay-bureau:*`` and ``saq:job:flexpay-bureau:*``.
QUEUE_NAME: Final = "flexpay-bureau"
#: The function name saq stores with each job (one kind of job on this queue).
FUNCTION: Final = "flexpay_batch.bureau.run"
#: Seconds a running job may go without a heartbeat before the sweep hands it to another
#: worker; the worker touches it every third of that.
DEFAULT_HEARTBEAT: Final = 30
#: Seconds between two sweeps for stuck jobs (one worker sweeps per interval: saq's lock).
DEFAULT_SWEEP: Final = 10
#: Seconds a finished job's state stays in Redis (for `runs --queue` and `enqueue --wait`).
RESULT_TTL: Final = 7 * 24 * 3600
#: Attempts before a job that keeps losing its worker is given up (aborted). A job released
#: at a worker's shutdown or put back because its token was busy does not spend one.
MAX_ATTEMPTS: Final = 10

#: A result's ``stopped`` when the job was not run because its organisation's job before it
#: stopped (``runs`` shows it failed, with the reason).
SKIPPED: Final = "skipped"

#: saq's statuses as `runs` shows them.
STATE: Final = {
    Status.NEW: "queued",
    Status.QUEUED: "queued",
    Status.ACTIVE: "running",
    Status.ABORTING: "running",
    Status.COMPLETE: "done",
    Status.FAILED: "failed",
    Status.ABORTED: "failed",
}


@asynccontextmanager
async def open_queue(url: str) -> AsyncIterator[RedisQueue]:
    """The bureau's queue at ``url`` (a redis:// URL), checked to answer; closed on exit.

    ``errors.ConfigError`` (exit 2) when the URL is not Redis's or Redis does not answer; the
    message names ``HOST:PORT``, never the URL (it may hold a password).
    """
    address = store_address(url)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise errors.ConfigError(f"--queue must be a redis:// URL (the queue at {address})")
    try:
        queue = RedisQueue.from_url(url, name=QUEUE_NAME)
    except ValueError:
        raise errors.ConfigError(f"--queue for {address} is not a valid redis:// URL") from None
    try:
        await queue.connect()
        await queue.count("queued")
    except (AuthenticationError, NoPermissionError) as exc:
        await _disconnect(queue)
        raise errors.ConfigError(
            f"the job queue at {address} refused the credentials ({type(exc).__name__})",
            hint="Put the URL with its password in FLEXPAY_QUEUE_URL; a --queue naming the "
            "same server and database takes the password from there.",
        ) from None
    except (RedisError, OSError) as exc:
        await _disconnect(queue)
        raise errors.ConfigError(
            f"the job queue at {address} does not answer ({type(exc).__name__})",
            hint="Start Redis there, or fix --queue.",
        ) from None
    try:
        yield queue
    finally:
        await _disconnect(queue)


async def _disconnect(queue: RedisQueue) -> None:
    """Close ``queue``'s connections. saq's close sends Redis a last command, which fails
    when Redis is gone or refuses us: that must not replace the error being reported (nor,
    after the work is done, turn a finished command into an internal error)."""
    with contextlib.suppress(RedisError, OSError):
        await queue.disconnect()


def jobs_from_manifest(path: Path) -> list[BureauJob]:
    """Every job of the manifest at ``path``, checked and made ready for the queue, in
    org-interleaved order (``interleave``; each organisation's jobs in manifest order).

    The checks ``run MANIFEST`` makes (``bureau.local.prepare_jobs``: the manifest, each file
    and its header, each job's own settings, no job twice), except those that belong to the
    workers' hosts: the tokens and CA bundles. ``errors.ConfigError`` (exit 2) naming every
    job and key at fault.
    """
    checked = prepare_jobs(path, {}, state_dir=state_root({}), on_this_host=False)
    return interleave([local.job for local in checked])


def interleave(jobs: Sequence[BureauJob]) -> list[BureauJob]:
    """``jobs`` in round-robin order of organisation (each organisation's own order kept):
    a1 b1 c1 a2 b2 a3 … so the queue's head is never one organisation's long run of jobs."""
    by_org: dict[str, list[BureauJob]] = {}
    for job in jobs:
        by_org.setdefault(job.org, []).append(job)
    ordered: list[BureauJob] = []
    depth = max((len(group) for group in by_org.values()), default=0)
    for index in range(depth):
        ordered.extend(group[index] for group in by_org.values() if index < len(group))
    return ordered


def saq_job(job: BureauJob, *, heartbeat: int, after: str | None = None) -> Job:
    """The saq job that carries ``job``: keyed by its id, no timeout (a job may run for
    hours), the ``heartbeat`` the sweep enforces; in ``meta`` its organisation, kind and
    ``after``, the id of the organisation's job before it in the manifest (it waits for that
    one to end, and is skipped if that one stopped)."""
    return Job(
        function=FUNCTION,
        kwargs={"job": job.to_json()},
        key=job.job_id,
        timeout=0,
        heartbeat=heartbeat,
        retries=MAX_ATTEMPTS,
        ttl=RESULT_TTL,
        meta={"org": job.org, "kind": job.kind, "after": after},
    )


#: What ``enqueue_jobs`` did with each job.
Enqueued = Literal["added", "queued", "done"]


async def enqueue_jobs(
    queue: RedisQueue, jobs: Iterable[BureauJob], *, heartbeat: int = DEFAULT_HEARTBEAT
) -> list[tuple[str, Enqueued]]:
    """Put each job on ``queue`` in the given order, each after the one of its organisation
    before it; (job id, what was done) for each: ``added``; ``queued`` if it was queued or
    running already (saq refuses the key); ``done`` if Redis records it done, so it is not
    run again (as `run MANIFEST` run again sends nothing for a finished job). A job that
    failed or was skipped is added again."""
    enqueued: list[tuple[str, Enqueued]] = []
    last: dict[str, str] = {}
    for job in jobs:
        after, last[job.org] = last.get(job.org), job.job_id
        known = await queue.job(job.job_id)
        if known is not None and known.status == Status.COMPLETE:
            enqueued.append((job.job_id, "done"))
            continue
        added = await queue.enqueue(saq_job(job, heartbeat=heartbeat, after=after))
        enqueued.append((job.job_id, "added" if added is not None else "queued"))
    return enqueued


@dataclass(frozen=True)
class JobView:
    """One queued job as `runs --queue` and `enqueue --wait` show it (nothing secret)."""

    id: str
    org: str
    kind: str
    state: str  # queued | running | done | failed
    rows_done: int
    rows_total: int | None
    rejected: int
    failed: int
    worker: str | None
    #: Epoch seconds of the last change (a heartbeat, the start, the end).
    updated: float | None
    attempts: int
    exit_code: int | None
    stopped: str | None
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        """The view as JSON: ``updated`` as UTC ISO 8601 (like `runs`' ``started_at``)."""
        data = asdict(self)
        if self.updated is not None:
            moment = datetime.fromtimestamp(self.updated, UTC)
            data["updated"] = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
        return data


def job_view(job: Job) -> JobView:
    """What ``job`` (saq's record of a bureau job) says about it."""
    meta = job.meta or {}
    result = job.result if isinstance(job.result, dict) else {}
    progress = {**meta, **result.get("progress", {})}
    stamps = [stamp for stamp in (job.touched, job.completed, job.started, job.queued) if stamp]
    message = result.get("message")
    if message is None and job.status in (Status.FAILED, Status.ABORTED):
        message = f"given up after {job.attempts} attempts ({job.error})"
    return JobView(
        id=job.key,
        org=str(meta.get("org", "?")),
        kind=str(meta.get("kind", "?")),
        state=STATE[job.status],
        rows_done=int(progress.get("rows_done", 0)),
        rows_total=progress.get("rows_total"),
        rejected=int(progress.get("rejected", 0)),
        failed=int(progress.get("failed", 0)),
        worker=job.worker_id,
        updated=max(stamps) / 1000 if stamps else None,
        attempts=job.attempts,
        exit_code=result.get("exit_code"),
        stopped=result.get("stopped"),
        message=message,
    )


async def list_jobs(queue: RedisQueue) -> list[JobView]:
    """Every bureau job Redis still holds, oldest enqueued first."""
    jobs = [job async for job in queue.iter_jobs()]
    jobs.sort(key=lambda job: (job.queued, job.key))
    return [job_view(job) for job in jobs]


async def job_views(queue: RedisQueue, ids: Sequence[str]) -> list[JobView | None]:
    """The jobs ``ids`` name, in that order (None for one Redis no longer holds)."""
    return [None if job is None else job_view(job) for job in await queue.jobs(ids)]


def now_ms() -> int:
    """Epoch milliseconds, saq's unit for job times."""
    return int(time.time() * 1000)


__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_SWEEP",
    "FUNCTION",
    "MAX_ATTEMPTS",
    "QUEUE_NAME",
    "RESULT_TTL",
    "SKIPPED",
    "Enqueued",
    "JobView",
    "enqueue_jobs",
    "interleave",
    "job_view",
    "job_views",
    "jobs_from_manifest",
    "list_jobs",
    "now_ms",
    "open_queue",
    "saq_job",
]
