"""What people write instead of the engine, each posting the same rows to the same server.

- ``handwritten`` ("aiolimiter script", the naive one): aiohttp + ``AsyncLimiter(rate, 1)``
  around each request and a fixed ``asyncio.sleep(1)`` before retrying a 429 — the pattern
  found in many codebases. Its bucket holds ``rate`` tokens, not the server's burst, so
  against a 100/s, burst-20 server it opens with 100 requests and meets 429s.
- ``bucket_sized`` ("aiolimiter, bucket-sized", the fair one): the same script with the limiter
  sized to the server's bucket, ``AsyncLimiter(burst, burst / rate)`` (capacity ``burst``,
  sustained ``rate``), as someone who read aiolimiter's burst semantics would write it.
- ``limiter_loop`` ("aiohttp + aiolimiter loop"): the CPU yardstick of figure 3: per row a
  ``Semaphore(workers)``, an ``AsyncLimiter`` (never waiting with limits off) and one POST.
- ``with_aiometer``: ``aiometer.run_all(..., max_at_once=workers, max_per_second=rate)``; a
  429 is retried after the same fixed one-second sleep (aiometer itself does not retry).
- ``bare_gather``: no limiter at all, ``asyncio.gather`` over every row with an
  ``asyncio.Semaphore(workers)``: the practical ceiling for Python HTTP on this machine.

Each builds its request bodies from the CSV with ``csv.DictReader`` (inside the timed span),
sends each row under one ``Idempotency-Key`` kept across its retries, and uses the same number
of connections as the engine's workers. ``BaselineRun`` holds wall and CPU seconds, measured
like ``engine.run_engine``.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiometer
from aiolimiter import AsyncLimiter

from .data import read_bodies
from .engine import RUN_TIMEOUT, cpu_seconds
from .simproc import RunningSim

#: Attempts per row before a baseline gives up on it (bounds every retry loop).
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class BaselineRun:
    """The outcome of one baseline run: seconds of wall and CPU time and the final statuses."""

    wall_seconds: float
    cpu_seconds: float
    created: int
    failed: int


Post = Callable[[dict[str, object]], Awaitable[int]]


def _session(sim: RunningSim, workers: int) -> aiohttp.ClientSession:
    ssl_context = ssl.create_default_context(cafile=str(sim.ca_path))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context, limit=workers),
        headers={"Authorization": f"Bearer {sim.token}"},
    )


async def _post_once(
    session: aiohttp.ClientSession, url: str, body: dict[str, object], key: str
) -> int:
    async with session.post(url, json=body, headers={"Idempotency-Key": key}) as response:
        await response.read()
        return response.status


async def _post_retrying_429(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, object],
    limiter: AsyncLimiter | None = None,
    pause: float = 1.0,
) -> int:
    """POST ``body``; on a 429 sleep ``pause`` seconds (the pattern's one second) and try again
    (at most ``MAX_ATTEMPTS``)."""
    key = str(uuid.uuid4())
    status = 0
    for _ in range(MAX_ATTEMPTS):
        if limiter is not None:
            async with limiter:
                status = await _post_once(session, url, body, key)
        else:
            status = await _post_once(session, url, body, key)
        if status != 429:
            return status
        await asyncio.sleep(pause)
    return status


async def _handwritten(
    csv_path: Path, sim: RunningSim, rate: float, burst: int, workers: int, pause: float
) -> list[int]:
    return await _limited_script(csv_path, sim, AsyncLimiter(rate, 1), workers, pause)


async def _bucket_sized(
    csv_path: Path, sim: RunningSim, rate: float, burst: int, workers: int, pause: float
) -> list[int]:
    limiter = AsyncLimiter(burst, burst / rate)
    return await _limited_script(csv_path, sim, limiter, workers, pause)


async def _limited_script(
    csv_path: Path, sim: RunningSim, limiter: AsyncLimiter, workers: int, pause: float
) -> list[int]:
    bodies = read_bodies(csv_path)
    async with _session(sim, workers) as session:
        url = sim.base_url + "employees"
        posts = (_post_retrying_429(session, url, body, limiter, pause) for body in bodies)
        return await asyncio.gather(*posts)


async def _aiometer(
    csv_path: Path, sim: RunningSim, rate: float, burst: int, workers: int, pause: float
) -> list[int]:
    bodies = read_bodies(csv_path)
    async with _session(sim, workers) as session:
        url = sim.base_url + "employees"
        jobs = [
            functools.partial(_post_retrying_429, session, url, body, pause=pause)
            for body in bodies
        ]
        statuses: list[int] = await aiometer.run_all(jobs, max_at_once=workers, max_per_second=rate)
        return statuses


async def _limiter_loop(
    csv_path: Path, sim: RunningSim, rate: float, burst: int, workers: int, pause: float
) -> list[int]:
    bodies = read_bodies(csv_path)
    gate = asyncio.Semaphore(workers)
    limiter = AsyncLimiter(rate, 1)
    async with _session(sim, workers) as session:
        url = sim.base_url + "employees"

        async def post(body: dict[str, object]) -> int:
            async with gate, limiter:
                return await _post_once(session, url, body, str(uuid.uuid4()))

        return await asyncio.gather(*(post(body) for body in bodies))


async def _bare_gather(
    csv_path: Path, sim: RunningSim, rate: float, burst: int, workers: int, pause: float
) -> list[int]:
    bodies = read_bodies(csv_path)
    gate = asyncio.Semaphore(workers)
    async with _session(sim, workers) as session:
        url = sim.base_url + "employees"

        async def post(body: dict[str, object]) -> int:
            async with gate:
                return await _post_once(session, url, body, str(uuid.uuid4()))

        return await asyncio.gather(*(post(body) for body in bodies))


Runner = Callable[[Path, RunningSim, float, int, int, float], Awaitable[list[int]]]
BASELINES: dict[str, Runner] = {
    "aiolimiter script": _handwritten,
    "aiolimiter, bucket-sized": _bucket_sized,
    "aiohttp + aiolimiter loop": _limiter_loop,
    "aiometer": _aiometer,
    "bare gather": _bare_gather,
}


async def _bounded(
    runner: Runner,
    csv_path: Path,
    sim: RunningSim,
    rate: float,
    burst: int,
    workers: int,
    pause: float,
) -> list[int]:
    async with asyncio.timeout(RUN_TIMEOUT):
        return await runner(csv_path, sim, rate, burst, workers, pause)


def run_baseline(
    name: str,
    csv_path: Path,
    sim: RunningSim,
    *,
    rate: float,
    burst: int = 1,
    workers: int = 8,
    pause: float = 1.0,
) -> BaselineRun:
    """Run baseline ``name`` (a key of ``BASELINES``) over ``csv_path``; rate in requests/s,
    ``burst`` the bucket the bucket-sized baseline mirrors (the others ignore it), ``pause``
    the seconds the retrying ones sleep after a 429."""
    cpu_before, started = cpu_seconds(), time.perf_counter()
    runner = BASELINES[name]
    statuses = asyncio.run(_bounded(runner, csv_path, sim, rate, burst, workers, pause))
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    created = sum(1 for status in statuses if status == 201)
    return BaselineRun(
        wall_seconds=wall, cpu_seconds=cpu, created=created, failed=len(statuses) - created
    )
