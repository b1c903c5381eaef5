"""The job's identity and its journal: create it, or open it and check this run may continue it.

::

    wanted = job_info(request, input_sha=sha, base_url=base_url, token=token)
    with open_journal(request, run_dir, wanted) as journal:
        job = build_job(request, journal)

A run directory holds one job. Continuing it is refused (``errors.ResumeRefused``) when the
input, kind, base URL, token or a job parameter that changes what rows send differ; except
that for kinds with ``JobSpec.new_job_when_input_changes`` (payroll) a changed input with
everything else equal begins a new job there, the old journal set aside under
``previous-<time>/``.
"""

from __future__ import annotations

from pathlib import Path

from flexpay_batch.core import errors
from flexpay_batch.core.keys import token_fingerprint
from flexpay_batch.core.settings import settings_to_journal
from flexpay_batch.engine.request import SANDBOX, RunRequest
from flexpay_batch.jobs.base import JobContext, RowJob
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.journal.jobinfo import JobInfo
from flexpay_batch.journal.run_journal import open_run_journal
from flexpay_batch.journal.status import META_INPUT_ROWS
from flexpay_batch.journal.store import Journal


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
        **settings_to_journal(request.settings),
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
        secret=request.job_secret,
    )


def open_journal(request: RunRequest, run_dir: Path, wanted: JobInfo) -> Journal:
    """Create the run's journal, or open it and check that this invocation may continue it."""
    return open_run_journal(
        run_dir / JOURNAL_NAME,
        wanted,
        restart=request.restart,
        allow_token_change=request.allow_token_change,
        same_parameters_check=_check_same_parameters,
        supersede=_supersedes,
    )


def _supersedes(stored: JobInfo, wanted: JobInfo) -> bool:
    """True when a changed input begins a new job in this run directory (kinds that allow
    it, e.g. payroll: a fixed file reconciles the same period's run) rather than a refusal.

    Everything else must be the same job: kind, target, token and the parameters that change
    what rows send; those mismatches are refused by the usual checks.
    """
    if stored.kind != wanted.kind or stored.input_sha256 == wanted.input_sha256:
        return False
    spec = job_spec(wanted.kind)
    if not spec.new_job_when_input_changes:
        return False
    if (stored.base_url, stored.token_fingerprint) != (wanted.base_url, wanted.token_fingerprint):
        return False
    changeable = spec.changeable_parameters
    before, now = (_comparable(job.config.get("job"), changeable) for job in (stored, wanted))
    return before == now


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


__all__ = ["META_INPUT_ROWS", "JournalMeta", "build_job", "job_info", "open_journal"]
