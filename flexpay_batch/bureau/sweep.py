"""Which running jobs are lost, decided on Redis's clock alone; and the sweep that hands them on.

::

    holds = job_holds(queue.redis)                    # flexpay-batch:running:<job key>
    await holds.acquire(job.key, holder, ttl=heartbeat)  # right after the dequeue
    swept = await sweep(queue, holds, lock=10)

saq's own ``sweep`` calls a job stuck when ``now() - touched > heartbeat``, where ``now()`` is
the sweeping host's clock and ``touched`` was written by the running host's: a sweeper whose
clock is a heartbeat ahead sweeps every live job of the others, one a heartbeat behind leaves a
dead worker's job alone for longer than the takeover bound. Here a worker holds a *hold* on
each job it has dequeued, a key that expires ``heartbeat`` seconds after its last refresh on
Redis's own clock (``TokenLeases`` with a job key for scope); the sweep hands on a job on the
active list only when nobody holds it. No host's clock is compared with another's.

Per job id on saq's active list (each id once, however many entries it has):

- no record: the entry is removed (saq does the same);
- finished (complete, failed, aborted): a leftover entry, removed; the job is never re-queued;
- held: its worker is alive (running it, starting it or putting it back): left alone;
- queued but on the active list and not held: a worker between its dequeue and its hold (a
  few milliseconds) or one that died there; looked at again ``UNCLAIMED_GRACE`` later in the
  same sweep and re-queued if still so;
- otherwise (running or aborting, not held: its worker died or lost Redis for a heartbeat):
  put back on the queue once (saq's ``retry``), or finished ``ABORTED`` past its retries.
  Its worker, if alive, sees its hold gone or the record no longer its own, and stops.
"""

from __future__ import annotations

from typing import Any, Final

import anyio
import redis.asyncio as aioredis
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.queue.redis import RedisQueue

from flexpay_batch.bureau.lease import TokenLeases

#: The namespace of the per-job holds: ``flexpay-batch:running:<job key>`` = worker/job.
HOLD_NAMESPACE: Final = "flexpay-batch:running"
#: Seconds the sweep gives a dequeued job nobody holds yet before it re-queues it: a live
#: worker takes its hold milliseconds after its dequeue.
UNCLAIMED_GRACE: Final = 1.0
#: The error saq records on a swept job (its own default).
SWEPT: Final = "swept"

_BACK_TO_QUEUE: Final = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


def job_holds(client: aioredis.Redis) -> TokenLeases:
    """The per-job holds (a lease per job key) in ``client``'s Redis."""
    return TokenLeases(client, namespace=HOLD_NAMESPACE)


class EntryMoves:
    """Moves of one entry between saq's lists that leave the job's record alone."""

    def __init__(self, queue: RedisQueue) -> None:
        self._queue = queue
        self._back: Any = queue.redis.register_script(_BACK_TO_QUEUE)

    async def back_to_queue(self, job_id: str) -> None:
        """One entry of ``job_id`` from the active list to the end of the queued list (a
        dequeued copy of a job another worker holds: it stays findable until that one ends)."""
        queue = self._queue
        await self._back(keys=[queue.namespace("active"), queue.namespace("queued")], args=[job_id])

    async def drop(self, job_id: str) -> None:
        """One entry of ``job_id`` off the active list (a copy of a finished job)."""
        await self._queue.redis.lrem(self._queue.namespace("active"), 1, job_id)


async def sweep(queue: RedisQueue, holds: TokenLeases, *, lock: int) -> list[str]:
    """Hand on the jobs of the active list nobody holds (see the module docstring); at most
    one sweep per ``lock`` seconds across all workers (saq's lock key). The ids swept."""
    redis = queue.redis
    if not await redis.set(queue.namespace("sweep"), 1, nx=True, ex=max(1, lock)):
        return []
    entries = await redis.lrange(queue.namespace("active"), 0, -1)
    swept: list[str] = []
    unclaimed: list[Job] = []
    for raw in dict.fromkeys(entries):
        job_id = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        job = await queue._get_job_by_id(job_id)
        if job is None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.lrem(queue.namespace("active"), 0, job_id)
                pipe.zrem(queue.namespace("incomplete"), job_id)
                await pipe.execute()
            swept.append(job_id)
            continue
        if job.status in TERMINAL_STATUSES:
            await redis.lrem(queue.namespace("active"), 0, job_id)
            continue
        if await holds.holder(job.key) is not None:
            continue
        if job.status in (Status.NEW, Status.QUEUED):
            unclaimed.append(job)  # perhaps a worker between its dequeue and its hold
            continue
        await _hand_on(queue, job)
        swept.append(job_id)
    if unclaimed:
        await anyio.sleep(UNCLAIMED_GRACE)
        active = set(await redis.lrange(queue.namespace("active"), 0, -1))
        for job in unclaimed:
            stored = await queue.job(job.key)
            if (
                stored is None
                or stored.status not in (Status.NEW, Status.QUEUED)
                or job.id.encode() not in active
                or await holds.holder(job.key) is not None
            ):
                continue  # its worker held it in time, or it moved on
            await _hand_on(queue, stored)
            swept.append(job.id)
    return swept


async def _hand_on(queue: RedisQueue, job: Job) -> None:
    """``job`` queued once more (or given up past its retries)."""
    async with queue.redis.pipeline(transaction=True) as pipe:
        # Every entry of it, so it is queued exactly once (saq's abort would finish a job
        # that also has an entry on the queued list as aborted).
        pipe.lrem(queue.namespace("active"), 0, job.id)
        pipe.lrem(queue.namespace("queued"), 0, job.id)
        await pipe.execute()
    if job.retryable:
        await queue.retry(job, error=SWEPT)
    else:
        await queue.finish(job, Status.ABORTED, error=SWEPT)


__all__ = [
    "HOLD_NAMESPACE",
    "SWEPT",
    "UNCLAIMED_GRACE",
    "EntryMoves",
    "job_holds",
    "sweep",
]
