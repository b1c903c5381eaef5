"""Shared fixtures: the FlexPay simulator (async and threaded) and a fake monotonic clock.

- ``make_simulator(**overrides)``: start a ``Simulator`` with ``SimConfig`` fields replaced;
  stopped at teardown. ``simulator`` is ``make_simulator()`` with the contract's defaults.
- ``make_simulator_thread(**overrides)`` / ``simulator_thread``: the same on a background
  thread, for sync code (subprocess CLI tests, schemathesis).
- ``fake_clock``: a ``FakeClock``; pass it as ``clock=`` to make the buckets and idempotency
  TTL move only when the test says so.
- ``FakeTime``: a clock and a recording ``sleep`` for the retry loop (``execute(clock=...,
  sleep=...)``): time moves only when the loop sleeps, and no test really sleeps.
- ``redis_server``: a real ``redis-server`` on a free loopback port (``tests/redisserver.py``);
  ``shared_redis``: this test process's one server, emptied, for tests that leave it running
  with its configuration unchanged.
- hypothesis: the ``suite`` profile (50 examples, no deadline); ``thorough`` on request.
- ``mocked`` / ``client``: aioresponses active, and a ``FlexPayClient`` for
  ``tests.fake_api.BASE`` whose limiters never wait (helpers in ``tests/fake_api.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aioresponses import aioresponses
from hypothesis import settings

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.sim import SimConfig, Simulator, SimulatorThread
from flexpay_batch.sim.testing import FakeClock
from tests.fake_api import BASE, NO_LIMITS, TOKEN, CompatResponse
from tests.harness import close_zygote
from tests.redisserver import RedisServer, shared_server

MakeSimulator = Callable[..., Awaitable[Simulator]]
MakeSimulatorThread = Callable[..., SimulatorThread]

# Property tests that do not set their own number of examples: 50 by default (hypothesis's own
# default is 100), ten times as many with ``pytest --hypothesis-profile=thorough``. Failures
# found are kept in .hypothesis/ and replayed first. No deadline: how long one example takes on
# a shared machine is not what these tests are about.
settings.register_profile("suite", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile("suite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, put the long modules at the head of each worker's first share of tests.

    ``--dist worksteal`` hands worker *k* the *k*-th contiguous slice of the collection and
    lets an idle worker steal the *tail* of a busy one's queue. In collection order the
    queue tests (half a minute to two of waiting each module) could end up last on one
    worker while the other sat idle. Here the modules with a ``slow`` test are dealt to the
    workers in turn, each worker's slice starting with its share of them and ending with
    quick modules, which are what gets stolen: the run ends on quick tests. Modules stay
    whole and in their own order (module fixtures are set up once); every worker computes
    the same order, as xdist requires.
    """
    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))
    if workers < 2:
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    slow = [m for m in modules.values() if any(i.get_closest_marker("slow") for i in m)]
    quick = [m for m in modules.values() if not any(i.get_closest_marker("slow") for i in m)]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for number, module in enumerate(slow):
        shares[number % workers].extend(module)
    # xdist's first hand-out: worker i gets len(pending) // (workers - i) of what is left.
    left, sizes = len(items), []
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    quick_items = [item for module in quick for item in module]
    for share, size in zip(shares, sizes, strict=True):
        take = max(0, size - len(share))
        share.extend(quick_items[:take])
        del quick_items[:take]
    shares[-1].extend(quick_items)
    reordered = [item for share in shares for item in share]
    assert sorted(map(id, reordered)) == sorted(map(id, items))
    items[:] = reordered


@pytest.fixture
def fake_clock() -> FakeClock:
    """A monotonic clock that only moves on ``advance(seconds)``."""
    return FakeClock()


class FakeTime:
    """A clock that only moves when the fake ``sleep`` is awaited; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses active for the test (every unmatched request raises)."""
    monkeypatch.setattr("aioresponses.core.ClientResponse", CompatResponse)
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[FlexPayClient]:
    """A client for ``tests.fake_api.BASE`` whose limiters never wait."""
    limiters = LimiterSet(NO_LIMITS, start="full")
    async with FlexPayClient(BASE, TOKEN, limiters=limiters) as opened:
        yield opened


@pytest.fixture
async def make_simulator() -> AsyncIterator[MakeSimulator]:
    """Factory: ``await make_simulator(limits=..., faults=...)`` → a started ``Simulator``."""
    started: list[Simulator] = []

    async def make(**overrides: object) -> Simulator:
        sim = Simulator(dataclasses.replace(SimConfig(), **overrides))  # type: ignore[arg-type]
        await sim.__aenter__()
        started.append(sim)
        return sim

    yield make
    for sim in reversed(started):
        await sim.__aexit__(None, None, None)


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> Simulator:
    """A running simulator with the contract's default limits and no faults."""
    return await make_simulator()


@pytest.fixture
def make_simulator_thread() -> Iterator[MakeSimulatorThread]:
    """Factory: ``make_simulator_thread(**overrides)`` → a ``SimulatorThread`` already running."""
    started: list[SimulatorThread] = []

    def make(**overrides: object) -> SimulatorThread:
        thread = SimulatorThread(dataclasses.replace(SimConfig(), **overrides))  # type: ignore[arg-type]
        thread.start()
        started.append(thread)
        return thread

    yield make
    for thread in reversed(started):
        thread.close()


@pytest.fixture
def simulator_thread(make_simulator_thread: MakeSimulatorThread) -> SimulatorThread:
    """A simulator with default settings running on its own thread and event loop."""
    return make_simulator_thread()


@pytest.fixture(scope="session", autouse=True)
def _cli_zygote() -> Iterator[None]:
    """Stop this test process's CLI zygote (``tests.forkcli``) when the session ends."""
    yield
    close_zygote()


@pytest.fixture(autouse=True)
def _private_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Default run directories of in-process runs go to a temporary state directory, never
    to the real per-user one (``engine.rundir.state_dir``)."""
    monkeypatch.setenv("FLEXPAY_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _close_stray_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the event loop looptime's pytest hook creates even for sync tests.

    Left open, it is garbage-collected during some later async test, whose run then fails on
    the unraisable ResourceWarning (warnings are errors in this suite)."""
    yield
    if inspect.iscoroutinefunction(request.function):
        return
    close_this_threads_loop()


def close_this_threads_loop() -> None:
    """Close this thread's idle event loop, if it has one, and unset it."""
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings(), contextlib.suppress(RuntimeError):
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = policy.get_event_loop()
        if not loop.is_running() and not loop.is_closed():
            loop.close()
    policy.set_event_loop(None)


@pytest.fixture
def shared_redis() -> RedisServer:
    """This test process's redis-server, emptied: for tests that neither stop it nor change
    its configuration (those take ``redis_server``)."""
    server = shared_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test's own (it may be killed and restarted)."""
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()
