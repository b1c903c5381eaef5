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
import socket
import subprocess
import time
from dataclasses import dataclass, field

import pytest

#: Seconds to wait for a started server to accept connections.
_READY_TIMEOUT = 10.0


def require_redis_server() -> str:
    """The path of ``redis-server``; skip (fail under CI) when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run)")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """One ``redis-server`` process; ``port`` stays the same across restarts."""

    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls) -> RedisServer:
        server = cls(require_redis_server(), _free_port())
        server.restart()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restart(self) -> None:
        """Start the process (again) on the same port, empty, and wait until it answers."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the data is gone, connections drop."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """One server per test process, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = RedisServer.start()
        atexit.register(_shared.stop)
    return _shared
