"""``enqueue --wait`` on a real terminal (a pseudo-terminal): the live table of the jobs, drawn
as a worker runs them, ends with every job done and the exit code of a single run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest

from tests.bureau.queue_support import Bureau, finished

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _drain(fd: int, into: list[bytes]) -> None:
    """Read the terminal's output until the last writer closes it (a full pty would block)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            return
        if not chunk:
            return
        into.append(chunk)


def test_enqueue_wait_on_a_terminal_draws_the_jobs_table(bureau: Bureau) -> None:
    manifest = bureau.manifest({"acme": 12, "globex": 12})
    command = ["enqueue", str(manifest), "--queue", bureau.url, "--wait"]
    bureau.worker("w1")
    controller, terminal = os.openpty()
    output: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(controller, output), daemon=True)
    try:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "flexpay_batch", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env={**bureau.env(), "COLUMNS": "160", "TERM": "xterm"},
            cwd=bureau.tmp,
        )
        os.close(terminal)
        terminal = -1
        reader.start()
        stdout, _ = waiting.communicate(timeout=90)
        reader.join(timeout=10)
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    shown = ANSI.sub("", b"".join(output).decode(errors="replace"))
    assert waiting.returncode == 0, shown[-3000:]
    ids = stdout.decode().split()
    assert len(ids) == 2
    assert finished(bureau.jobs(), 2)
    # The table's header and, in its last drawing, each job done with all its rows.
    assert re.search(r"job\s+org\s+kind\s+state\s+rows\s+rejected\s+failed\s+worker", shown)
    last = shown[shown.rindex("job ") :]
    for job_id, org in zip(ids, ("acme", "globex"), strict=True):
        assert re.search(rf"{re.escape(job_id)}\s+{org}\s+onboard\s+done\s+12/12", last), last
    assert "24/24 rows · rejected 0 · failed 0 · jobs: done 2" in last
    bureau.assert_each_row_once(["acme", "globex"])
