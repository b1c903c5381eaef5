"""Start ``flexpay-batch`` processes by forking a pre-imported interpreter instead of exec'ing one.

A fresh ``python -m flexpay_batch`` spends most of a second importing aiohttp, pydantic, typer,
rich and cryptography before it reads a byte; the crash tests start the CLI dozens of times, so
that start-up was most of the suite's CPU. A *zygote* (Android's name for the idea) imports the
command line once and forks a new process per invocation::

    zygote = Zygote.start()
    proc = zygote.spawn(["onboard", "people.csv"], env=env, cwd=tmp_path)
    proc.send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)

Each invocation is still a real, separate process: its own pid, its own file descriptors and
environment, ``flexpay_batch.entry.main`` run exactly as the console script runs it, real
signals, and an exit status read with ``waitpid`` (``-9`` when SIGKILLed, as with ``Popen``).
What is skipped is only the interpreter's start-up and the imports, which no test is about.

The zygote runs this file as ``python -m tests.forkcli FD`` with the test process's
``sys.path``, so the CLI under test is the code the tests import (not whatever the virtual
environment's editable install points at). Per invocation it forks a *monitor*, which forks the
*worker*, reports the worker's pid on a status pipe, waits for it and reports its exit code.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("!I")
_MAX_FDS = 4


# ── the zygote's side ─────────────────────────────────────────────────────────────────────


def _recv_request(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One length-prefixed JSON request and its four file descriptors; None at EOF."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, _MAX_FDS)
    if not data:
        return None
    (length,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + length:
        more = sock.recv(1 << 16)
        if not more:
            return None
        data += more
    return json.loads(data[_HEADER.size :]), fds


def _text_stream(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
    """An unbuffered-style text stream on ``fd`` (as ``PYTHONUNBUFFERED=1`` gives)."""
    return io.TextIOWrapper(
        io.FileIO(fd, mode, closefd=False),  # type: ignore[arg-type]
        encoding="utf-8",
        errors=errors,
        write_through=mode == "w",
    )


def _exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with for ``exc``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _worker(request: dict[str, Any], stdin: int, stdout: int, stderr: int) -> None:
    """Become ``flexpay-batch ARGS``: set fds, environment and cwd, run main, exit."""
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["flexpay-batch", *request["args"]]
    sys.stdin = _text_stream(0, "r", "strict")
    sys.stdout = _text_stream(1, "w", "strict")
    sys.stderr = _text_stream(2, "w", "backslashreplace")
    code = 0
    try:
        from flexpay_batch.entry import main

        main()
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        # The interpreter's own behaviour: a traceback, then death by SIGINT.
        traceback.print_exc()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter does at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _monitor(request: dict[str, Any], fds: list[int]) -> None:
    """Fork the worker, report its pid, wait for it and report its exit code."""
    stdin, stdout, stderr, status = fds
    pid = os.fork()
    if pid == 0:
        os.close(status)
        _worker(request, stdin, stdout, stderr)
    for fd in (stdin, stdout, stderr):
        os.close(fd)
    os.write(status, f"{pid}\n".encode())
    _, wait_status = os.waitpid(pid, 0)
    os.write(status, f"{os.waitstatus_to_exitcode(wait_status)}\n".encode())
    os.close(status)


def _reap(signum: int, frame: object) -> None:
    """Wait for every monitor that has ended (SIGCHLD handler)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(sock_fd: int) -> None:
    """Import the CLI, then fork one monitor per request until the test process hangs up."""
    # The whole point: import once, fork many. The CLI module itself is light (its commands
    # import the engine and the simulator when they run), so the heavy modules are named too.
    import flexpay_batch.cli.app
    import flexpay_batch.cli.status
    import flexpay_batch.cli.validate
    import flexpay_batch.engine.run
    import flexpay_batch.engine.target
    import flexpay_batch.jobs.paystubs
    import flexpay_batch.sim.server  # noqa: F401

    # Monitors are reaped as they end, so their CPU time (and their workers') is accounted to
    # the zygote and, through it, to the test run (``time python -m pytest`` stays honest).
    signal.signal(signal.SIGCHLD, _reap)
    sock = socket.socket(fileno=sock_fd)
    while (received := _recv_request(sock)) is not None:
        request, fds = received
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            try:
                _monitor(request, fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


# ── the test process's side ───────────────────────────────────────────────────────────────


class ForkedProcess:
    """A ``subprocess.Popen``-like handle on one forked CLI invocation (text output)."""

    def __init__(self, args: Sequence[str], status: int, stdout: Any, stderr: Any) -> None:
        self.args = list(args)
        self._status = os.fdopen(status, "rb", buffering=0)
        self._stdout = stdout
        self._stderr = stderr
        self.pid = int(self._read_line(None))
        self.returncode: int | None = None

    def _read_line(self, timeout: float | None) -> str:
        """The next line of the status pipe; TimeoutExpired if none within ``timeout``."""
        import select

        line = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._status], [], [], left)
            if not ready:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            byte = self._status.read(1)
            if not byte:
                raise RuntimeError("the CLI's monitor died without reporting an exit code")
            line += byte
        return line.decode()

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None (never blocks)."""
        if self.returncode is None:
            try:
                self.returncode = int(self._read_line(0.0))
            except subprocess.TimeoutExpired:
                return None
            self._status.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        if self.returncode is None:
            self.returncode = int(self._read_line(timeout))
            self._status.close()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process unless it has already been reaped."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit, then return everything written to stdout and stderr."""
        self.wait(timeout)
        return self._read(self._stdout), self._read(self._stderr)

    @staticmethod
    def _read(handle: Any) -> str:
        handle.seek(0)
        data: bytes = handle.read()
        handle.close()
        return data.decode("utf-8", errors="replace")


class Zygote:
    """A process that has imported the CLI and forks it on request (one per test process)."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._proc = proc
        self._sock = sock
        self._lock = threading.Lock()

    @classmethod
    def start(cls) -> Zygote:
        """Start a zygote with this process's ``sys.path`` (so it imports the same code)."""
        ours, theirs = socket.socketpair()
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkcli", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=root,
            env=env,
        )
        theirs.close()
        return cls(proc, ours)

    def spawn(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        stdin: str | None = None,
    ) -> ForkedProcess:
        """Fork ``flexpay-batch ARGS`` with exactly ``env`` and ``cwd``; output to temp files."""
        # The output files outlive this call: ForkedProcess.communicate reads and closes them.
        stdout = tempfile.TemporaryFile()  # noqa: SIM115
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        status_r, status_w = os.pipe()
        request = {"args": list(args), "env": dict(env), "cwd": str(cwd or Path.cwd())}
        body = json.dumps(request).encode()
        message = _HEADER.pack(len(body)) + body
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write((stdin or "").encode())
            stdin_file.seek(0)
            fds = [stdin_file.fileno(), stdout.fileno(), stderr.fileno(), status_w]
            try:
                with self._lock:
                    sent = socket.send_fds(self._sock, [message], fds)
                    self._sock.sendall(message[sent:])
            finally:
                os.close(status_w)
        return ForkedProcess(args, status_r, stdout, stderr)

    def close(self) -> None:
        """Hang up: the zygote exits; invocations still running are left to finish."""
        self._sock.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
