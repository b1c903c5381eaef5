"""The weekly payroll run: create the run once, add one item per row, check, then submit.

Order of events, each step safe to repeat after a crash:

1. Resolve employees with paginated list reads (one pass, not one read per row); rows naming
   an unknown employee are rejected before any write.
2. Create the draft run with a key derived from the job, and store its id in the journal at
   once; a crash between the POST and that commit is healed on resume because the same key
   replays the same run.
3. Add every row as an item, each with its own deterministic key (the runner does this).
4. Read the run back and compare its item count and total with the file (and with the
   operator's control totals, if given). Submit only when every row was accepted and all
   figures agree to the cent; otherwise leave the run in draft and say what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flexpay_batch.core import errors
from flexpay_batch.core.keys import keyed_hash
from flexpay_batch.input.columns import PAYROLL_COLUMNS, PAYROLL_REFERENCE_COLUMNS
from flexpay_batch.input.models import PayrollRow, RowModel
from flexpay_batch.jobs.base import FinishReport, JobContext, JobSpec, Meta, RowRejection, RowTask
from flexpay_batch.jobs.lookups import list_all, read_page

# Types only: validate and status load the jobs without aiohttp (start-up cost).
if TYPE_CHECKING:
    from flexpay_batch.api.client import ApiResponse, FlexPayClient
    from flexpay_batch.api.session import ApiSession

META_RUN_ID = "payroll_run_id"
META_SUBMITTED = "payroll_submitted"


@dataclass(frozen=True, slots=True)
class PayPeriod:
    """The run's pay group and dates, as the operator gave them."""

    pay_group_id: str
    period_start: date
    period_end: date
    pay_date: date

    def __post_init__(self) -> None:
        if self.period_end < self.period_start:
            raise errors.UsageError("--period-end is before --period-start")
        if self.pay_date < self.period_start:
            raise errors.UsageError("--pay-date is before the pay period starts")

    def body(self) -> dict[str, str]:
        return {
            "pay_group_id": self.pay_group_id,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "pay_date": self.pay_date.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ControlTotals:
    """Figures the operator expects (from the payroll system), checked before submitting."""

    item_count: int | None = None
    total: Decimal | None = None


def payroll_parameters(
    period: PayPeriod, *, submit: bool, control: ControlTotals
) -> dict[str, Any]:
    """The job's parameters as stored in the journal (and compared on resume)."""
    return {
        **period.body(),
        "submit": submit,
        "expected_item_count": control.item_count,
        "expected_total": str(control.total) if control.total is not None else None,
    }


def payroll_job_from_parameters(parameters: Mapping[str, Any], meta: Meta) -> PayrollJob:
    """Rebuild the job from ``payroll_parameters`` output (for ``resume``)."""
    period = PayPeriod(
        pay_group_id=str(parameters["pay_group_id"]),
        period_start=date.fromisoformat(str(parameters["period_start"])),
        period_end=date.fromisoformat(str(parameters["period_end"])),
        pay_date=date.fromisoformat(str(parameters["pay_date"])),
    )
    total = parameters.get("expected_total")
    control = ControlTotals(
        item_count=parameters.get("expected_item_count"),
        total=Decimal(total) if total is not None else None,
    )
    return PayrollJob(
        period, meta=meta, submit=bool(parameters.get("submit", True)), control=control
    )


class PayrollJob:
    """Add a payroll file's rows as items of one payroll run, then submit it."""

    def __init__(
        self,
        period: PayPeriod,
        *,
        meta: Meta,
        submit: bool = True,
        control: ControlTotals | None = None,
    ) -> None:
        self.period = period
        self.submit = submit
        self.control = control or ControlTotals()
        self._meta = meta
        self._by_external_id: dict[str, str] = {}
        self._employee_ids: set[str] = set()
        self.run_id: str | None = None

    async def prepare(self, api: ApiSession, secret: bytes) -> None:
        await self._check_pay_group(api)
        await self._resolve_employees(api)
        self.run_id = self._meta.get(META_RUN_ID) or await self._create_run(api, secret)

    async def _check_pay_group(self, api: ApiSession) -> None:
        groups = await list_all(api, "pay_groups")
        if not any(group.get("id") == self.period.pay_group_id for group in groups):
            known = ", ".join(sorted(str(g.get("id")) for g in groups))
            raise errors.UsageError(
                f"pay group {self.period.pay_group_id!r} does not exist (known: {known})"
            )

    async def _resolve_employees(self, api: ApiSession) -> None:
        employees = await list_all(api, "employees")
        for employee in employees:
            employee_id = str(employee.get("employee_id", ""))
            self._employee_ids.add(employee_id)
            external_id = employee.get("external_id")
            if isinstance(external_id, str):
                self._by_external_id[external_id] = employee_id

    async def _create_run(self, api: ApiSession, secret: bytes) -> str:
        body = self.period.body()
        key = "fpb_run_" + keyed_hash(secret, "payroll_run|" + "|".join(body.values()))
        reply = await api.request("POST", "payroll_runs", json_body=body, idempotency_key=key)
        run_id = str(reply.body["payroll_run_id"])
        self._meta.set(META_RUN_ID, run_id)
        return run_id

    def employee_id_for(self, model: PayrollRow) -> str | None:
        if model.employee_id is not None:
            return model.employee_id if model.employee_id in self._employee_ids else None
        assert model.employee_external_id is not None
        return self._by_external_id.get(model.employee_external_id)

    def check(self, model: RowModel) -> RowRejection | None:
        assert isinstance(model, PayrollRow)
        if self.employee_id_for(model) is None:
            field = "employee_id" if model.employee_id is not None else "employee_external_id"
            return RowRejection(field, "unknown_employee", "no such employee in this organisation")
        return None

    def body_for(self, model: RowModel) -> Mapping[str, Any]:
        assert isinstance(model, PayrollRow)
        employee_id = self.employee_id_for(model)
        assert employee_id is not None
        return model.to_request_body(employee_id)

    def amount_of(self, model: RowModel) -> Decimal:
        assert isinstance(model, PayrollRow)
        return model.gross_amount

    async def send(self, client: FlexPayClient, task: RowTask) -> ApiResponse:
        return await client.request(
            "POST",
            f"payroll_runs/{self.run_id}/items",
            json_body=task.body,
            idempotency_key=task.idempotency_key,
        )

    def server_id(self, reply: ApiResponse) -> str | None:
        value = reply.body.get("item_id")
        return value if isinstance(value, str) else None

    def existing_id(self, conflict: errors.Conflict) -> str | None:
        existing = conflict.details.get("item_id")
        return existing if isinstance(existing, str) else None

    async def look_up(self, api: ApiSession, task: RowTask) -> str | None:
        # The server keeps one item per employee per run and answers a second add with 409
        # and the existing item's id, so re-sending is itself the look-up.
        return None

    async def finish(
        self, api: ApiSession, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """Compare server, file and control figures; submit when they all agree.

        The report says what was submitted, or what differs (and is then ``incomplete``: the
        run stays in draft).
        """
        if self._meta.get(META_SUBMITTED):
            return FinishReport((f"payroll run {self.run_id} was already submitted",))
        run = await read_page(api, f"payroll_runs/{self.run_id}", {})
        if run.get("status") == "submitted":
            # Submitted by an earlier attempt whose reply was lost before it was journaled.
            self._meta.set(META_SUBMITTED, "true")
            return FinishReport((f"payroll run {self.run_id} was already submitted",))
        differences = _differences(run, file_count, file_total, self.control, all_accepted)
        if differences:
            return FinishReport(
                tuple(f"payroll run {self.run_id} left in draft: {d}" for d in differences),
                incomplete=True,
            )
        if not self.submit:
            return FinishReport(
                (f"payroll run {self.run_id} is ready and left in draft (--no-submit)",)
            )
        await self._submit(api, file_count, file_total)
        return FinishReport(
            (f"payroll run {self.run_id} submitted: {file_count} items, total {file_total}",)
        )

    async def _submit(self, api: ApiSession, count: int, total: Decimal) -> None:
        body = {"expected_item_count": count, "expected_total": f"{total:.2f}"}
        key = f"fpb_submit_{self.run_id}"
        await api.request(
            "POST", f"payroll_runs/{self.run_id}/submit", json_body=body, idempotency_key=key
        )
        self._meta.set(META_SUBMITTED, "true")


def _differences(
    run: Mapping[str, Any],
    file_count: int,
    file_total: Decimal,
    control: ControlTotals,
    all_accepted: bool,
) -> list[str]:
    found: list[str] = []
    if not all_accepted:
        found.append("not every row was accepted (see rejects.csv)")
    server_count = run.get("item_count")
    server_total = Decimal(str(run.get("total", "0")))
    if server_count != file_count:
        found.append(f"the server holds {server_count} items, the file has {file_count}")
    if server_total != file_total:
        found.append(f"the server's total is {server_total}, the file's is {file_total}")
    if control.item_count is not None and control.item_count != file_count:
        found.append(f"expected {control.item_count} items (control), the file has {file_count}")
    if control.total is not None and control.total != file_total:
        found.append(f"expected total {control.total} (control), the file's is {file_total}")
    return found


def _build(parameters: Mapping[str, Any], context: JobContext) -> PayrollJob:
    return payroll_job_from_parameters(parameters, context.meta)


SPEC = JobSpec(
    name="payroll",
    model=PayrollRow,
    columns=PAYROLL_COLUMNS,
    marker_columns=frozenset({"gross_amount"}),
    reference_columns=PAYROLL_REFERENCE_COLUMNS,
    reference_header="employee_reference",
    server_id_header="item_id",
    moves_money=True,
    # None of these changes what a row sends. ``submit``: review a run in draft, then submit
    # it. The control figures: a run left in draft because the operator's figure was wrong is
    # submitted by the same command with the right figure (``--restart`` would create a
    # second payroll run instead).
    changeable_parameters=frozenset({"submit", "expected_total", "expected_item_count"}),
    build=_build,
)
