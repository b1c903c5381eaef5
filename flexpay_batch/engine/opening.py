"""The job's identity and its journal: create it, or open it and check this run may continue it.

::

    wanted = job_info(request, input_sha=sha, base_url=base_url, token=token)
    with open_journal(request, run_dir, wanted) as journal:
        job = build_job(request, journal)

A run directory holds one job. Continuing it is refused (``errors.ResumeRefused``) when the
input, kind, base URL, token or a job parameter that changes what rows send differ.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from flexpay_batch.core import errors
from flexpay_batch.core.files import ensure_private_dir
from flexpay_batch.core.keys import token_fingerprint
from flexpay_batch.engine.request import SANDBOX, RunRequest
from flexpay_batch.jobs.base import JobContext, RowJob
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.store import (
    JOURNAL_NAME,
    JobInfo,
    Journal,
    check_resumable,
    journal_files,
)

#: Journal meta key: the input's row count, for ``status`` to say what is left.
META_INPUT_ROWS = "input_rows"


class JournalMeta:
    """The journal's durable key/value table, as the jobs see it."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        return self._journal.get_meta(key)

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, committed at once."""
        self._journal.set_meta(key, value)


def build_job(request: RunRequest, journal: Journal) -> RowJob:
    """The request's job, built by its kind from the request's parameters."""
    context = JobContext(meta=JournalMeta(journal))
    return job_spec(request.kind).build(request.parameters, context)


def job_info(request: RunRequest, *, input_sha: str, base_url: str, token: str) -> JobInfo:
    sandbox = request.sandbox
    config = {
        **request.settings.describe(),
        "base_url": SANDBOX if sandbox else base_url,
        "encoding": request.encoding,
        "job": request.parameters,
    }
    return JobInfo.new(
        kind=request.kind,  # type: ignore[arg-type]  # validated by JobInfo itself
        input_path=str(request.input_path.resolve()),
        input_sha256=input_sha,
        base_url=SANDBOX if sandbox else base_url,
        token_fingerprint=SANDBOX if sandbox else token_fingerprint(token),
        config=config,
    )


def open_journal(request: RunRequest, run_dir: Path, wanted: JobInfo) -> Journal:
    """Create the run's journal, or open it and check that this invocation may continue it."""
    ensure_private_dir(run_dir)
    path = run_dir / JOURNAL_NAME
    if request.restart and path.exists():
        _archive_previous(run_dir)
    if path.exists():
        _discard_unborn_journal(path)
    if not path.exists():
        return Journal.create(path, wanted)
    journal = Journal.open(path)
    try:
        check_resumable(journal.job, wanted, allow_token_change=request.allow_token_change)
        _check_same_parameters(journal.job, wanted)
    except errors.ResumeRefused:
        journal.close()
        raise
    return journal


def _discard_unborn_journal(path: Path) -> None:
    """Delete the empty database a crash inside ``Journal.create`` leaves behind.

    ``Journal.create`` makes the file, then commits the schema and the job (with the secret
    every idempotency key derives from) in one transaction, and only then is a request sent.
    A database without a single table therefore belongs to a job that never began: without
    this, a SIGKILL in that window would leave a run directory nothing but ``--restart``
    could use. Done under the journal's writer lock (``<db>.lock``), so a journal another
    process is creating right now is left alone.
    """
    lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live writer: Journal.open reports it
        try:
            with closing(sqlite3.connect(path)) as conn:
                (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            return  # not an SQLite database: Journal.open says so
        if tables == 0:
            for file in journal_files(path):
                file.unlink(missing_ok=True)
    finally:
        os.close(lock_fd)


def _check_same_parameters(stored: JobInfo, wanted: JobInfo) -> None:
    changeable = job_spec(wanted.kind).changeable_parameters
    before, now = (_comparable(job.config.get("job"), changeable) for job in (stored, wanted))
    if before != now:
        raise errors.ResumeRefused(
            f"the run directory's job was started with other job settings ({before}); "
            f"this command asks for {now}"
        )


def _comparable(parameters: object, changeable: frozenset[str]) -> object:
    if isinstance(parameters, dict):
        return {k: v for k, v in parameters.items() if k not in changeable}
    return parameters


def _archive_previous(run_dir: Path) -> None:
    """Keep the old job's files (an audit trail) under ``previous-<time>/``, never delete."""
    archive = run_dir / time.strftime("previous-%Y%m%dT%H%M%S")
    ensure_private_dir(archive)
    for child in run_dir.iterdir():
        if child.is_file():
            child.rename(archive / child.name)


__all__ = ["META_INPUT_ROWS", "JournalMeta", "build_job", "job_info", "open_journal"]
