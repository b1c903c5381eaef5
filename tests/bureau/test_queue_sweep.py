"""The sweep and the per-job holds on a real redis-server, without workers: which entries of
saq's active list are handed on, and that no clock but Redis's decides it (``bureau.sweep``).

Each test writes saq's records the way the workers do and calls the sweep or ``take`` once,
so the races that are rare in a real run (a copy of a running job dequeued by another
worker, a sweep between a dequeue and its hold) are played out step by step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from saq.job import Status
from saq.queue.redis import RedisQueue

from flexpay_batch.bureau.queue import open_queue, saq_job
from flexpay_batch.bureau.sweep import UNCLAIMED_GRACE, job_holds, sweep
from flexpay_batch.bureau.worker import KEY_CHECK_KEY, BureauWorker, Taken, WorkerConfig, key_check
from tests.bureau.kit import A_JOB
from tests.redisserver import RedisServer

HOUR_MS = 3600 * 1000


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[RedisQueue]:
    async with open_queue(redis_server.url) as opened:
        yield opened


async def _put(queue: RedisQueue, status: Status, *, touched: int, lists: dict[str, int]) -> str:
    """A job recorded with ``status``, ``touched`` (epoch ms, as some host's clock said) and
    ``lists[name]`` entries on each of saq's lists; its id."""
    job = saq_job(A_JOB, heartbeat=3)
    job.queue = queue
    job.status = status
    job.touched = job.started = job.queued = touched
    job.worker_id = "host-a-1-abcd" if status == Status.ACTIVE else None
    job.attempts = 1 if status == Status.ACTIVE else 0
    await queue.redis.set(job.id, queue.serialize(job))
    await queue.redis.zadd(queue.namespace("incomplete"), {job.id: 0})
    for name, count in lists.items():
        for _ in range(count):
            await queue.redis.rpush(queue.namespace(name), job.id)
    return job.id


async def _sweep_now(queue: RedisQueue) -> list[str]:
    await queue.redis.delete(queue.namespace("sweep"))  # as if the interval had passed
    return await sweep(queue, job_holds(queue.redis), lock=1)


async def _entries(queue: RedisQueue, name: str, job_id: str) -> int:
    found = await queue.redis.lrange(queue.namespace(name), 0, -1)
    return sum(entry in (job_id, job_id.encode()) for entry in found)


async def _status(queue: RedisQueue, job_id: str) -> Status:
    job = await queue._get_job_by_id(job_id)
    assert job is not None
    return job.status


@pytest.mark.parametrize("skew_ms", [-HOUR_MS, 0, HOUR_MS], ids=["behind", "same", "ahead"])
async def test_a_held_running_job_is_never_swept_whatever_its_touched_time(
    queue: RedisQueue, skew_ms: int
) -> None:
    """``touched`` an hour before or after the sweeper's clock (hosts' clocks disagree): a
    job its worker holds is left alone; once the hold is gone it is re-queued exactly once."""
    job_id = await _put(queue, Status.ACTIVE, touched=_now_ms() + skew_ms, lists={"active": 1})
    key = queue.job_key_from_id(job_id)
    holds = job_holds(queue.redis)
    assert await holds.acquire(key, "host-a-1-abcd/" + key, ttl=30)
    assert await _sweep_now(queue) == []
    assert await _status(queue, job_id) == Status.ACTIVE
    await holds.release(key, "host-a-1-abcd/" + key)  # its worker died: the hold expires
    assert await _sweep_now(queue) == [job_id]
    assert await _status(queue, job_id) == Status.QUEUED
    assert (await _entries(queue, "queued", job_id), await _entries(queue, "active", job_id)) == (
        1,
        0,
    )


async def test_a_running_job_with_a_copy_on_the_queue_is_requeued_not_given_up(
    queue: RedisQueue,
) -> None:
    """A dead worker's job with two entries on the active list and a copy queued: one sweep
    re-queues it once (saq's abort would have finished it ABORTED, seeing it queued)."""
    job_id = await _put(queue, Status.ACTIVE, touched=_now_ms(), lists={"active": 2, "queued": 1})
    assert await _sweep_now(queue) == [job_id]
    assert await _status(queue, job_id) == Status.QUEUED
    assert await _entries(queue, "queued", job_id) == 1
    assert await _entries(queue, "active", job_id) == 0


async def test_a_finished_jobs_leftover_entry_is_removed_and_never_requeued(
    queue: RedisQueue,
) -> None:
    job_id = await _put(queue, Status.COMPLETE, touched=_now_ms(), lists={"active": 1})
    await _sweep_now(queue)
    assert await _status(queue, job_id) == Status.COMPLETE
    assert await _entries(queue, "active", job_id) == 0
    assert await _entries(queue, "queued", job_id) == 0


async def test_a_dequeued_job_nobody_holds_gets_a_moment_to_be_held(queue: RedisQueue) -> None:
    """Between its dequeue and its hold a worker has a few milliseconds; a sweep that falls
    there looks again a moment later and leaves the job to the worker that held it; a job
    nobody holds by then (its worker died there) is re-queued in that same sweep."""
    job_id = await _put(queue, Status.QUEUED, touched=_now_ms(), lists={"active": 1})
    key = queue.job_key_from_id(job_id)
    holds = job_holds(queue.redis)

    async def hold_soon() -> None:
        await asyncio.sleep(UNCLAIMED_GRACE / 4)
        assert await holds.acquire(key, "host-b-2-abcd/" + key, ttl=30)

    async with asyncio.TaskGroup() as group:
        group.create_task(hold_soon())
        assert await _sweep_now(queue) == []
    assert await _entries(queue, "active", job_id) == 1
    await holds.release(key, "host-b-2-abcd/" + key)  # that worker died before starting it
    assert await _sweep_now(queue) == [job_id]
    assert await _entries(queue, "queued", job_id) == 1
    assert await _entries(queue, "active", job_id) == 0


async def test_a_copy_of_a_job_another_worker_holds_stays_findable(
    queue: RedisQueue, tmp_path: Path
) -> None:
    """A worker dequeues a copy of a job that another worker runs (the copy a sweep can
    leave when it falls between a dequeue and its start): it goes back on the queue, not
    into nothing. Once the other worker dies, the sweep and the queue bring the job back:
    it was never lost (the old code dropped the copy's entry, the job's last one, so the
    sweep, which reads only the active list, could never hand it on)."""
    job_id = await _put(queue, Status.ACTIVE, touched=_now_ms(), lists={"queued": 1})
    key = queue.job_key_from_id(job_id)
    holds = job_holds(queue.redis)
    assert await holds.acquire(key, "host-a-1-abcd/" + key, ttl=30)
    config = WorkerConfig(env={}, state_dir=tmp_path, key_secret=b"k" * 32, concurrency=1)
    worker = BureauWorker(queue, None, config, say=lambda _text: None)

    copy = await queue.dequeue(timeout=1)
    assert copy is not None
    assert await worker.take(copy) is Taken.DEFERRED
    assert await _status(queue, job_id) == Status.ACTIVE  # the record is left alone
    assert await _entries(queue, "queued", job_id) == 1

    await holds.release(key, "host-a-1-abcd/" + key)  # the worker running it dies
    copy = await queue.dequeue(timeout=1)
    assert copy is not None
    assert await worker.take(copy) is Taken.STALE  # recorded running: left to the sweep
    assert await _entries(queue, "active", job_id) == 1
    assert await _sweep_now(queue) == [job_id]
    assert await _status(queue, job_id) == Status.QUEUED
    assert await _entries(queue, "queued", job_id) == 1
    assert await _entries(queue, "active", job_id) == 0


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_worker_that_finds_another_key_check_stops_taking_jobs(
    queue: RedisQueue, tmp_path: Path
) -> None:
    """A Redis restarted empty forgets the key secret's check value; if a worker with
    another secret set it first, the workers already running see it at their next sweep:
    they take no more jobs (and would finish, not hand on, the ones they run) and say why."""
    said: list[str] = []
    config = WorkerConfig(
        env={}, state_dir=tmp_path, key_secret=b"k" * 32, concurrency=1, sweep_interval=1
    )
    worker = BureauWorker(queue, None, config, say=said.append)
    await queue.redis.set(KEY_CHECK_KEY, key_check(b"another secret, another bureau, 0123"))
    with anyio.fail_after(20):
        await worker.run()
    assert worker.refused is not None
    assert any("taking no more jobs" in line for line in said), said
