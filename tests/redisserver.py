"""A real ``redis-server`` on a free loopback port, for the shared limiter store's tests.

    server = RedisServer.start()        # --save "" --appendonly no: nothing on disk
    url = server.url                    # redis://127.0.0.1:PORT/0
    server.kill(); server.restart()     # same port, empty: what a crashed Redis looks like
    server.stop()

``require_redis_server()`` skips when the binary is absent on a developer's machine, but
fails under CI (``CI=true``), where ``.ci/run`` installs it: a skipped store test in CI
would be a guarantee nobody checked.
"""

from __future__ import annotations

import atexit
import os
import shutil

import pytest

from benchmarks.redisproc import RedisProcess, free_port

__all__ = ["RedisServer", "free_port", "require_redis_server", "shared_server"]


def require_redis_server() -> str:
    """The path of ``redis-server``; skip (fail under CI) when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run)")
        pytest.skip(reason)
    return path


class RedisServer(RedisProcess):
    """The benchmark's ``RedisProcess``, skipped (or failed under CI) without the binary."""

    @classmethod
    def start(cls) -> RedisServer:
        return cls.launch(require_redis_server())


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """One server per test process, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = RedisServer.start()
        atexit.register(_shared.stop)
    return _shared
