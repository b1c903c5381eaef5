"""``onboard --dry-run`` and ``payroll --dry-run``: what a run checks before its first write,
and no write.

::

    exit_code = dry_run(request)

Checks the header, validates every row, runs the job's read-only pre-flight against the API
(``RowJob.prepare_read_only``: onboarding reads the pay groups and employment types; payroll
the pay group, the employees and the period's run with its items) and the job's own per-row
checks, then prints what would be sent: how many of which request, every row that would be
rejected (with file, row and field), and what the run's finish would do (payroll: submit, or
leave the run in draft and why). No run directory, no journal, no write. Exit 0 when the run
would end well, 1 when rows would be rejected or the job left incomplete (as the real run
would end).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import anyio

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import environment, load_token
from flexpay_batch.engine.reach import FailFastOnConnect
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.target import target
from flexpay_batch.input.models import RowModel
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, ValidRow, format_rejection, validate_rows
from flexpay_batch.jobs.base import JobContext, RowJob
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import job_spec

#: Rejected rows printed; the count says how many more there are.
MAX_SHOWN: Final = 50


class _NoMeta:
    """Run-level facts a dry run never keeps."""

    def get(self, key: str) -> str | None:
        return None

    def set(self, key: str, value: str) -> None:
        return None


def dry_run(request: RunRequest) -> int:
    """Check ``request`` as far as a run would before writing; print what it would send."""
    check_header(job_spec(request.kind), request.input_path, encoding=request.encoding)
    token = None if request.sandbox else load_token(request.settings.token_file, environment())
    if token is not None:
        install_redaction(token)
    return anyio.run(_dry_run, request, token)


async def _dry_run(request: RunRequest, token: str | None) -> int:
    spec = job_spec(request.kind)
    settings = request.settings
    async with target(request, token) as (base_url, ca_bundle, api_token):
        client = FlexPayClient(
            base_url,
            api_token,
            ca_bundle=ca_bundle,
            limiters=LimiterSet(settings.limits),
            max_in_flight=settings.workers,
            timeouts=settings.timeouts,
        )
        async with client:
            job = spec.build(request.parameters, JobContext(meta=_NoMeta()))
            api = FailFastOnConnect(client, settings.retry, RetryBudget())
            plan = await job.prepare_read_only(api)
    for sentence in plan:
        print(sentence)
    return _check_rows(request, job)


@dataclass
class _Tally:
    """What the dry run found in the file."""

    rows: int = 0
    valid: int = 0
    amount: Decimal = field(default_factory=Decimal)
    #: Valid rows the server already holds exactly as the file says (nothing to send).
    unchanged: int = 0
    rejected: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    def sends(self) -> str:
        """``"494 x POST /employees"``; ``"nothing"`` when no row would be sent."""
        return ", ".join(f"{n} x {label}" for label, n in self.requests.items()) or "nothing"


def _check_rows(request: RunRequest, job: RowJob) -> int:
    """Validate and check every row as the run would; print the rejected ones, the requests
    the rest would become and what the finish would do; the exit code the run would have."""
    source = str(request.input_path)
    spec = job_spec(request.kind)
    tally = _Tally()
    records = iter_records(request.input_path, encoding=request.encoding)
    for item in validate_rows(records, spec.model, source_name=source):
        tally.rows += 1
        rejection = item if isinstance(item, Rejection) else _plan_row(job, item, tally)
        if rejection is None:
            continue
        tally.rejected += 1
        if tally.rejected <= MAX_SHOWN:
            print(format_rejection(rejection, source), file=sys.stderr)
    if tally.rejected > MAX_SHOWN:
        print(f"... and {tally.rejected - MAX_SHOWN} more rejected rows", file=sys.stderr)
    same = f", {tally.unchanged} already on the server as in the file" if tally.unchanged else ""
    print(
        f"dry run, nothing sent: {source} ({spec.name}) {tally.rows} rows: would send "
        f"{tally.sends()}{same}, would reject {tally.rejected}"
    )
    finish = job.forecast_finish(
        file_count=tally.valid, file_total=tally.amount, all_accepted=tally.rejected == 0
    )
    for message in finish.messages:
        print(message)
    return 0 if tally.rejected == 0 and tally.rows > 0 and not finish.incomplete else 1


def _plan_row(job: RowJob, item: ValidRow[RowModel], tally: _Tally) -> Rejection | None:
    """The job's check of a valid row: its rejection, or the request it would become."""
    problem = job.check(item.model)
    if problem is not None:
        return Rejection(item.row, item.line, problem.field, problem.code, problem.reason)
    tally.valid += 1
    tally.amount += job.amount_of(item.model)
    planned = job.planned_request(item.model)
    if planned is None:
        tally.unchanged += 1
    else:
        tally.requests[planned] += 1
    return None


__all__ = ["dry_run"]
