"""``onboard --dry-run``: everything a run checks before its first write, and no write.

::

    exit_code = dry_run(request)

Checks the header, validates every row, runs the job's read-only pre-flight against the API
(onboarding: the organisation's pay groups and employment types) and the job's own per-row
checks, then prints what would be sent: how many of which request, and every row that would
be rejected, with file, row and field. No run directory, no journal, no write. Exit 0 when
every row would be sent, 1 when some would be rejected (as the real run would end).

Only kinds whose pre-flight is read-only (``READ_ONLY_PREPARE``) can be dry-run: a payroll's
pre-flight creates the draft run, which is a write.
"""

from __future__ import annotations

import sys
from typing import Final

import anyio

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.core import errors
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import environment, load_token
from flexpay_batch.engine.reach import FailFastOnConnect
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.target import target
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, format_rejection, validate_rows
from flexpay_batch.jobs.base import JobContext
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import job_spec

#: Kinds whose ``prepare`` only reads, and the request each valid row would become.
READ_ONLY_PREPARE: Final = {"onboarding": "POST /employees"}
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
    if request.kind not in READ_ONLY_PREPARE:
        raise errors.UsageError(
            f"--dry-run is not available for {request.kind}: its pre-flight writes"
        )
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
            await job.prepare(FailFastOnConnect(client, settings.retry, RetryBudget()), b"")
    source = str(request.input_path)
    rows = would_send = rejected = 0
    records = iter_records(request.input_path, encoding=request.encoding)
    for item in validate_rows(records, spec.model, source_name=source):
        rows += 1
        if isinstance(item, Rejection):
            rejection = item
        else:
            problem = job.check(item.model)
            if problem is None:
                would_send += 1
                continue
            rejection = Rejection(item.row, item.line, problem.field, problem.code, problem.reason)
        rejected += 1
        if rejected <= MAX_SHOWN:
            print(format_rejection(rejection, source), file=sys.stderr)
    if rejected > MAX_SHOWN:
        print(f"... and {rejected - MAX_SHOWN} more rejected rows", file=sys.stderr)
    print(
        f"dry run, nothing sent: {source} ({spec.name}) {rows} rows: would send {would_send} "
        f"x {READ_ONLY_PREPARE[spec.name]}, would reject {rejected}"
    )
    return 0 if rejected == 0 and rows > 0 else 1


__all__ = ["READ_ONLY_PREPARE", "dry_run"]
