"""The simulator in its own process, recording every admission decision.

    with SimProcess() as server:                   # one child process for the whole suite
        with server.running(SimConfig(...)) as sim:
            ...  # drive sim.base_url with sim.ca_path and sim.token
        sim.report.admitted_times("write")         # monotonic seconds, server side

The child (``multiprocessing`` spawn) runs one ``Simulator`` at a time on its own event loop,
so on a two-core machine the client under test gets a core to itself and its CPU time is its
own. Every call of the simulator's ``BucketSet.admit`` is recorded as (``time.monotonic()``,
endpoint class, admitted?): a 429 for rate is exactly an admission refused. ``time.monotonic``
is the system-wide ``CLOCK_MONOTONIC`` on Linux, so the parent can compare its own times.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.sim import SimConfig, Simulator
from flexpay_batch.sim.buckets import Admission, BucketSet
from flexpay_batch.sim.effects import EffectLog

#: Seconds to wait for the child to answer a command (start-up includes imports and TLS).
REPLY_TIMEOUT = 60.0

Event = tuple[float, str, bool]


@dataclass
class SimReport:
    """What one simulator saw: admissions (time, class, admitted?), effects, its CPU seconds,
    and each employee created as (time, external id): which client sent what, server side."""

    events: list[Event] = field(default_factory=list)
    effects: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    created: list[tuple[float, str]] = field(default_factory=list)

    def admitted_times(self, endpoint_class: str = "write") -> list[float]:
        """Monotonic times at which requests of ``endpoint_class`` were admitted, sorted."""
        return sorted(t for t, cls, ok in self.events if cls == endpoint_class and ok)

    def refused_times(self, endpoint_class: str = "write") -> list[float]:
        """Monotonic times of the 429s (refused admissions) of ``endpoint_class``, sorted."""
        return sorted(t for t, cls, ok in self.events if cls == endpoint_class and not ok)

    @property
    def employees_created(self) -> int:
        return int(self.effects.get("employees", {}).get("created", 0))


@dataclass
class RunningSim:
    """Connection details of a running simulator; ``report`` is filled in when it stops."""

    base_url: str
    ca_path: Path
    token: str
    report: SimReport = field(default_factory=SimReport)


class _RecordingBuckets:
    """Wraps the simulator's ``BucketSet`` and logs each decision; adds one list append."""

    def __init__(self, inner: BucketSet) -> None:
        self._inner = inner
        self.events: list[Event] = []

    def admit(self, token: str, endpoint_class: EndpointClass) -> Admission:
        decision = self._inner.admit(token, endpoint_class)
        self.events.append((time.monotonic(), endpoint_class.value, decision.allowed))
        return decision


class _RecordingEffects:
    """Wraps the simulator's ``EffectLog``: notes when each employee is created (the moment
    its write was admitted, give or take the handler's own microseconds)."""

    def __init__(self, inner: EffectLog) -> None:
        self._inner = inner
        self.created: list[tuple[float, str]] = []

    def employee_created(self, external_id: str, idempotency_key: str | None) -> None:
        self.created.append((time.monotonic(), external_id))
        self._inner.employee_created(external_id, idempotency_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_recorders(sim: Simulator) -> tuple[_RecordingBuckets, _RecordingEffects]:
    """Record ``sim``'s admission decisions and employee creations from now on (the shared
    figure and the shared-store tests read them)."""
    buckets = _RecordingBuckets(sim.state.buckets)
    sim.state.buckets = buckets  # type: ignore[assignment]
    creations = _RecordingEffects(sim.state.store.effects)
    sim.state.store.effects = creations  # type: ignore[assignment]
    return buckets, creations


def _child_main(conn: Connection) -> None:
    asyncio.run(_serve_commands(conn))


async def _serve_commands(conn: Connection) -> None:
    """Serve ``("start", SimConfig)`` … ``("stop",)`` pairs until ``("exit",)``."""
    loop = asyncio.get_running_loop()
    this = psutil.Process()
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] != "start":
            return
        async with Simulator(message[1]) as sim:
            recorder, creations = install_recorders(sim)
            cpu_before = sum(this.cpu_times()[:2])
            conn.send((sim.base_url, str(sim.ca_path), sim.tokens["admin"]))
            await loop.run_in_executor(None, conn.recv)
            cpu = sum(this.cpu_times()[:2]) - cpu_before
            report = SimReport(
                events=recorder.events,
                effects=sim.effects(),
                cpu_seconds=cpu,
                created=creations.created,
            )
        conn.send(report)


class SimProcess:
    """A child process that runs simulators on request (see the module docstring)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(child_conn,), name="flexpay-sim", daemon=True
        )
        self._child_conn = child_conn

    def __enter__(self) -> Self:
        self._process.start()
        self._child_conn.close()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with suppress(OSError):
            self._conn.send(("exit",))
        self._process.join(timeout=10.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5.0)
        self._conn.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _receive(self) -> Any:
        if not self._conn.poll(REPLY_TIMEOUT):
            raise TimeoutError("the simulator process did not answer in time")
        return self._conn.recv()

    @contextmanager
    def running(self, config: SimConfig) -> Iterator[RunningSim]:
        """Start a fresh simulator (fresh buckets, empty store) for one measured case."""
        self._conn.send(("start", config))
        base_url, ca_path, token = self._receive()
        sim = RunningSim(base_url=base_url, ca_path=Path(ca_path), token=token)
        try:
            yield sim
        finally:
            self._conn.send(("stop",))
            sim.report = self._receive()
