"""``onboard --dry-run`` and ``payroll --dry-run``: what a run checks before its first write,
and no write.

::

    result = dry_run(request, announce=show)
    result.exit_code   # 0 it would end well; 1 rows rejected or the job left incomplete

Checks the header, validates every row, runs the job's read-only pre-flight against the API
(``RowJob.prepare_read_only``: onboarding reads the pay groups and employment types; payroll
the pay group, the employees and the period's run with its items) and the job's own per-row
checks, and returns what it found (``DryRunResult``): what the pre-flight would do, how many
of which request would be sent, the rows that would be rejected (with row and field), and
what the run's finish would do (payroll: submit, or leave the run in draft and why). No run
directory, no journal, no write, and no display: the command line shows the result
(``cli.dryrun``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
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
from flexpay_batch.engine.target import Announce, target
from flexpay_batch.input.models import RowModel
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, ValidRow, validate_rows
from flexpay_batch.jobs.base import FinishReport, JobContext, RowJob
from flexpay_batch.jobs.header import check_header
from flexpay_batch.jobs.registry import job_spec

#: Rejected rows kept in the result (to show); ``DryRunResult.rejected`` counts them all.
MAX_SHOWN: Final = 50


class _NoMeta:
    """Run-level facts a dry run never keeps."""

    def get(self, key: str) -> str | None:
        return None

    def set(self, key: str, value: str) -> None:
        return None


@dataclass(frozen=True)
class DryRunResult:
    """What a dry run found: the run it would be, without its writes.

    Counts and sentences only, and the first ``MAX_SHOWN`` rejections (each names a row and
    a field, like rejects.csv); no row's content.
    """

    #: The input file, as rejections name it.
    source: str
    kind: str
    #: What the run would do before its rows (payroll: create or adopt the period's run).
    preflight: tuple[str, ...]
    rows: int
    #: Requests the valid rows would become (``"POST /employees"`` → count), in file order.
    requests: Mapping[str, int]
    #: Valid rows the server already holds exactly as the file says (nothing to send).
    unchanged: int
    rejected: int
    #: The first ``MAX_SHOWN`` rejected rows, in file order.
    rejections: tuple[Rejection, ...]
    #: What the run's finish would do (``RowJob.forecast_finish``).
    finish: FinishReport

    @property
    def exit_code(self) -> int:
        """The real run's: 0 if it would end well, 1 if rows would be rejected, the file has
        none, or the job would be left incomplete."""
        ok = self.rejected == 0 and self.rows > 0 and not self.finish.incomplete
        return 0 if ok else 1


def dry_run(request: RunRequest, *, announce: Announce | None = None) -> DryRunResult:
    """Check ``request`` as far as a run would before writing; what it would send.

    ``announce`` is told the sandbox banner (``engine.target``). Raises the ``errors`` class
    that stops a real run before its rows (a bad header, an unknown pay group, no token).
    """
    check_header(job_spec(request.kind), request.input_path, encoding=request.encoding)
    token = None if request.sandbox else load_token(request.settings.token_file, environment())
    if token is not None:
        install_redaction(token)
    return anyio.run(_dry_run, request, token, announce)


async def _dry_run(
    request: RunRequest, token: str | None, announce: Announce | None
) -> DryRunResult:
    spec = job_spec(request.kind)
    settings = request.settings
    async with target(request, token, announce=announce) as (base_url, ca_bundle, api_token):
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
    return _check_rows(request, job, plan)


@dataclass
class _Tally:
    """What the dry run found in the file."""

    rows: int = 0
    valid: int = 0
    amount: Decimal = field(default_factory=Decimal)
    unchanged: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)


def _check_rows(request: RunRequest, job: RowJob, preflight: tuple[str, ...]) -> DryRunResult:
    """Validate and check every row as the run would: the rejected ones, the requests the
    rest would become, and what the finish would do."""
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
        if len(tally.rejections) < MAX_SHOWN:
            tally.rejections.append(rejection)
    finish = job.forecast_finish(
        file_count=tally.valid, file_total=tally.amount, all_accepted=tally.rejected == 0
    )
    return DryRunResult(
        source=source,
        kind=spec.name,
        preflight=preflight,
        rows=tally.rows,
        requests=dict(tally.requests),
        unchanged=tally.unchanged,
        rejected=tally.rejected,
        rejections=tuple(tally.rejections),
        finish=finish,
    )


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


__all__ = ["MAX_SHOWN", "DryRunResult", "dry_run"]
