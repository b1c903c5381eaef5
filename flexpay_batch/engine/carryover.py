"""Fix and re-run: a new onboarding job on an edited file skips the rows already done.

::

    carried = carry_over(request, journal)   # rows recorded as already existed, not sent

Fixing the rejected rows of an onboarding file changes the file, so the same command begins a
new job (the default run directory is named after the file's hash). Without this, that job
would send every row again and collect a 409 for each one already created. Instead, before
the first row is sent, the run directories next to this one are searched for earlier jobs of
the same kind on the same file path, API and token; each row whose identity (the external
id) took effect there is recorded in the new journal as ``already_existed`` with the server
id found there, and the pipeline skips it like any settled row.

Only for kinds whose ``JobSpec.rows_carry_over`` says so: onboarding, whose employee is
identified by its external id organisation-wide, so "done there" means "exists here". (A
payroll row belongs to one payroll run: an earlier job's item is in another run.) Never for
sandbox jobs, whose simulator forgot everything when it ended.
"""

from __future__ import annotations

from pathlib import Path

from flexpay_batch.core.keys import keyed_hash
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.request import SANDBOX, RunRequest
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, validate_rows
from flexpay_batch.jobs.registry import job_spec
from flexpay_batch.journal.jobinfo import JobInfo
from flexpay_batch.journal.previous import DoneRows, read_done_rows
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done, Register, Transition


def earlier_jobs(run_dir: Path, journal: Journal) -> list[DoneRows]:
    """Earlier jobs beside ``run_dir`` of the same kind, file path, API and token."""
    current = journal.job
    if not job_spec(current.kind).rows_carry_over or current.base_url == SANDBOX:
        return []
    found = []
    parent = run_dir.resolve().parent
    for other in sorted(parent.iterdir()) if parent.is_dir() else []:
        if not other.is_dir() or other.resolve() == run_dir.resolve():
            continue
        done = read_done_rows(other, accept=lambda job: _same_file_api_token(job, current))
        if done is not None and done.server_ids:
            found.append(done)
    return found


def _same_file_api_token(job: JobInfo, current: JobInfo) -> bool:
    return (
        job.job_id != current.job_id
        and job.kind == current.kind
        and job.input_path == current.input_path
        and job.base_url == current.base_url
        and job.token_fingerprint == current.token_fingerprint
    )


def carry_over(request: RunRequest, run_dir: Path, journal: Journal) -> int:
    """Record the rows earlier jobs already did as ``already_existed``; return how many.

    Only for a job with no rows yet (a fresh job): a resumed job has its own journal to go by.
    """
    if journal.counts() and sum(journal.counts().values()):
        return 0
    earlier = earlier_jobs(run_dir, journal)
    if not earlier:
        return 0
    secret = journal.job.secret
    transitions: list[Transition] = []
    seen: set[str] = set()
    records = iter_records(request.input_path, encoding=request.encoding)
    model = job_spec(request.kind).model
    for item in validate_rows(records, model, source_name=str(request.input_path)):
        if isinstance(item, Rejection):
            continue
        identity = str(item.model.identity)
        if identity in seen:
            continue
        for done in earlier:
            server_id = done.server_ids.get(keyed_hash(done.job.secret, identity))
            if server_id is not None:
                seen.add(identity)
                transitions.append(
                    Register(
                        row=item.row,
                        row_key=keyed_hash(secret, identity),
                        body_hash=None,
                        idempotency_key=None,
                    )
                )
                transitions.append(Done(item.row, server_id, RowStatus.ALREADY_EXISTED))
                break
    if transitions:
        journal.commit_batch(transitions)
    return len(seen)


__all__ = ["carry_over", "earlier_jobs"]
