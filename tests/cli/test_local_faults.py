"""Faults of this machine end in one sentence naming the path and what to do, exit 5 (issue 12).

Disk full and read-only file systems cannot be made unprivileged (and CI runs as root, so
``chmod 0500`` would not stop a write): they are injected at the ``os.open`` seam, raising the
very ``OSError`` the kernel would. The planted symlink is real.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.cli.app import main
from flexpay_batch.core import errors
from flexpay_batch.journal.store import Journal
from tests.conftest import close_this_threads_loop
from tests.harness import write_onboarding


def _run_cli_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(args)`` in this process (so a patched seam applies), on the main thread (the run
    installs signal handlers). The loop pytest's plugins left on this thread is closed first:
    the run's own loop replaces it, and an unclosed one would warn when collected."""
    close_this_threads_loop()
    with pytest.raises(SystemExit) as exited:
        main(args)
    return int(exited.value.code or 0), capsys.readouterr().err


def _refuse_results_csv(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path).endswith("results.csv"):
            raise OSError(number, os.strerror(number), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "it is on a read-only file system"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_output_refused_by_the_machine_is_exit_5_naming_the_path(
    number: int,
    words: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ENOSPC/EROFS/EACCES writing results.csv: one sentence with the path, exit 5, not 70."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    run_dir = tmp_path / "run"
    _refuse_results_csv(monkeypatch, number)
    code, err = _run_cli_in_process(
        ["onboard", str(source), "--run-dir", str(run_dir), "--sandbox"], capsys
    )
    assert code == 5, err
    assert f"{run_dir / 'results.csv'}: {words}" in err
    assert "internal error" not in err


def test_symlink_planted_as_results_csv_is_exit_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symlink at results.csv is not followed and is reported as such, exit 5."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.csv"
    (run_dir / "results.csv").symlink_to(target)
    code, err = _run_cli_in_process(
        ["onboard", str(source), "--run-dir", str(run_dir), "--sandbox"], capsys
    )
    assert code == 5, err
    assert "results.csv is a symbolic link" in err
    assert not target.exists()


def test_sqlite_disk_full_maps_to_the_disk_full_sentence() -> None:
    """SQLite's own "database or disk is full" becomes the same sentence as ENOSPC."""
    exc = __import__("sqlite3").OperationalError("database or disk is full")
    exc.sqlite_errorcode = 13  # SQLITE_FULL
    fault = errors.local_fault(exc, where="journal.sqlite")
    assert str(fault) == "cannot write journal.sqlite: the disk is full"
    assert fault.exit_code == 5


def test_disk_full_while_journaling_is_exit_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's "database or disk is full" during a group commit: exit 5, the disk sentence."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 3)
    run_dir = tmp_path / "run"
    real_commit = Journal.commit_batch

    def full_disk(self: Journal, transitions: Any) -> int:
        if any(type(t).__name__ == "Done" for t in transitions):
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise exc
        return real_commit(self, transitions)

    monkeypatch.setattr(Journal, "commit_batch", full_disk)
    code, err = _run_cli_in_process(
        ["onboard", str(source), "--run-dir", str(run_dir), "--sandbox"], capsys
    )
    assert code == 5, err
    assert "the disk is full" in err
    assert "internal error" not in err


def test_only_local_write_faults_become_exit_5() -> None:
    """A bare connection reset is a bug's business (70), not "cannot write the run directory"."""
    assert not errors.is_local_fault(ConnectionResetError(errno.ECONNRESET, "reset"))
    assert errors.is_local_fault(OSError(errno.ENOSPC, "No space left on device"))
    assert errors.is_local_fault(OSError(errno.EIO, "I/O error", "/run/results.csv"))
