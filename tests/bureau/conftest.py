"""The ``bureau`` fixture of the queue tests (``queue_support.Bureau``): started on a real
redis-server and the simulator, closed afterwards with each worker's stderr printed (pytest
shows it for a failing test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bureau.queue_support import Bureau
from tests.conftest import MakeSimulatorThread
from tests.redisserver import RedisServer


@pytest.fixture
def bureau(
    redis_server: RedisServer, make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> Iterator[Bureau]:
    made = Bureau.start(redis_server, make_simulator_thread, tmp_path)
    yield made
    logs = made.close()
    for name, text in logs.items():
        print(f"--- worker {name} ---\n{text[-3000:]}")
