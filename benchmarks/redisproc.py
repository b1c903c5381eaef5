"""A real ``redis-server`` on a free loopback port, nothing kept on disk: for the shared-store
figure and for the shared limiter store's tests (``tests/redisserver.py`` adds the skip).

    server = RedisProcess.launch(shutil.which("redis-server"))
    url = server.url                    # redis://127.0.0.1:PORT/0
    server.kill(); server.restart()     # same port, empty: what a crashed Redis looks like
    server.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Self

#: Seconds to wait for a started server to accept connections.
_READY_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisProcess:
    """One ``redis-server`` process; ``port`` stays the same across restarts.

    Its working directory is a private temporary one, removed by ``stop``: a server made a
    replica writes the primary's snapshot there, and a server loads any ``dump.rdb`` in its
    directory at start, so a shared one (the caller's) would leak data between servers.
    """

    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    workdir: str | None = field(default=None, repr=False)

    @classmethod
    def launch(cls, binary: str) -> Self:
        """Start ``binary`` on a free port and wait until it answers."""
        server = cls(binary, free_port())
        server.restart()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's process id (``None`` when stopped)."""
        return None if self.process is None else self.process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restart(self) -> None:
        """Start the process (again) on the same port, empty, and wait until it answers."""
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="flexpay-redis-")
        for leftover in ("dump.rdb",):  # a replica's snapshot: restarted means empty
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.workdir, leftover))
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.workdir,
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
        """Terminate the process and remove its working directory."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
