"""The ``bureau`` fixture of the queue tests (``queue_support.Bureau``): started on a real
redis-server and the simulator, closed afterwards with each worker's stderr printed (pytest
shows it for a failing test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bureau.queue_support import SETUP_WRITES_PER_SECOND, Bureau
from tests.conftest import MakeSimulatorThread
from tests.redisserver import RedisServer


@pytest.fixture
def bureau(
    redis_server: RedisServer, make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> Iterator[Bureau]:
    yield from _bureau(Bureau.start(redis_server, make_simulator_thread, tmp_path))


@pytest.fixture
def fast_setup_bureau(
    redis_server: RedisServer, make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> Iterator[Bureau]:
    """A ``bureau`` whose simulator allows ``SETUP_WRITES_PER_SECOND``, for tests whose
    onboarding only sets the stage (``manifest(onboarding_writes=...)``)."""
    writes = SETUP_WRITES_PER_SECOND
    made = Bureau.start(redis_server, make_simulator_thread, tmp_path, writes_per_second=writes)
    yield from _bureau(made)


def _bureau(made: Bureau) -> Iterator[Bureau]:
    yield made
    logs = made.close()
    for name, text in logs.items():
        print(f"--- worker {name} ---\n{text[-3000:]}")
