"""The weekly payroll: the period's one regular run, made equal to the file, submitted once.

Order of events, each step safe to repeat after a crash, from this run directory or any other:

1. Resolve employees with paginated list reads (one pass, not one read per row); rows naming
   an unknown employee are rejected before any write.
2. Find the period's run. The journal's run id if this job already has one; else (regular
   runs) the period's regular run on the server, adopted whatever job or host created it; else
   a new draft, created with a key derived from the job. A 409 ``payroll_run_exists`` (another
   host won the race) adopts the run it names. ``--off-cycle`` always creates its own run.
   The run id is journaled at once; its items are read once (``payroll_reconcile``).
3. Each row (the runner calls ``already_done`` / ``send``): an item already equal to the row
   is left alone; a different one is PATCHed; a missing one is added (a 409 ``item_exists``
   from a race adopts and PATCHes the item it names). Every write carries a key derived from
   this job's secret, the item and the body: a new job never replays an old job's keys, and
   the server's one-item-per-employee rule stops it from adding anything twice.
4. Read the run back and compare every item with the file (and the operator's control
   totals). Items on the run that the file does not have block submission; ``--prune``
   deletes them. Submit only when everything agrees; otherwise leave the draft and say what
   differs.

A run that is already submitted is never written to: its items are compared with the file,
rows that differ are rejected, and the run's finish says whether it matches (exit 0, nothing
sent) or what differs (exit 1, pointing at ``--off-cycle``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flexpay_batch.core import errors
from flexpay_batch.core.keys import body_sha256, encode_body, idempotency_key, keyed_hash
from flexpay_batch.core.states import META_NEXT_STEP, META_UNFINISHED_WORK
from flexpay_batch.input.columns import PAYROLL_COLUMNS, PAYROLL_REFERENCE_COLUMNS
from flexpay_batch.input.models import PayrollRow, RowModel
from flexpay_batch.jobs import payroll_preview as preview
from flexpay_batch.jobs.base import (
    FinishReport,
    JobContext,
    JobSpec,
    Meta,
    RowRejection,
    RowTask,
    id_in_reply,
    id_of_existing,
)
from flexpay_batch.jobs.lookups import list_all, read_page
from flexpay_batch.jobs.payroll_reconcile import PATCHABLE, ItemFigures, compare

# Types only: validate and status load the jobs without aiohttp (start-up cost).
if TYPE_CHECKING:
    from flexpay_batch.api.client import ApiResponse, FlexPayClient
    from flexpay_batch.api.session import ApiSession

META_RUN_ID = "payroll_run_id"
META_SUBMITTED = "payroll_submitted"
#: The contract's run types: one regular run per pay group and period; off-cycle runs ad hoc.
REGULAR = "regular"
OFF_CYCLE = "off_cycle"


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

    def describe(self) -> str:
        """``pg_weekly 2026-03-02..08`` (the end's year and month only when they differ)."""
        start, end = self.period_start, self.period_end
        if (start.year, start.month) == (end.year, end.month):
            tail = f"{end.day:02d}"
        elif start.year == end.year:
            tail = end.isoformat()[5:]
        else:
            tail = end.isoformat()
        return f"{self.pay_group_id} {start.isoformat()}..{tail}"


@dataclass(frozen=True, slots=True)
class ControlTotals:
    """Figures the operator expects (from the payroll system), checked before submitting."""

    item_count: int | None = None
    total: Decimal | None = None


def payroll_parameters(
    period: PayPeriod,
    *,
    submit: bool,
    control: ControlTotals,
    off_cycle: bool = False,
    prune: bool = False,
) -> dict[str, Any]:
    """The job's parameters as stored in the journal (and compared on resume)."""
    return {
        **period.body(),
        "submit": submit,
        "off_cycle": off_cycle,
        "prune": prune,
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
        period,
        meta=meta,
        submit=bool(parameters.get("submit", True)),
        control=control,
        off_cycle=bool(parameters.get("off_cycle", False)),
        prune=bool(parameters.get("prune", False)),
    )


class PayrollJob:
    """Make the period's payroll run equal to a payroll file, then submit it."""

    def __init__(
        self,
        period: PayPeriod,
        *,
        meta: Meta,
        submit: bool = True,
        control: ControlTotals | None = None,
        off_cycle: bool = False,
        prune: bool = False,
    ) -> None:
        self.period = period
        self.submit = submit
        self.control = control or ControlTotals()
        self.off_cycle = off_cycle
        self.prune = prune
        self._meta = meta
        self._by_external_id: dict[str, str] = {}
        self._employee_ids: set[str] = set()
        self._secret = b""
        self.run_id: str | None = None
        self._run: dict[str, Any] = {}
        # The run's items when it was adopted (employee id -> item), and the file's items as
        # the reader validates them (employee id -> figures). Memory only: they hold pay.
        self._server_items: dict[str, dict[str, Any]] = {}
        self._file_items: dict[str, ItemFigures] = {}
        self.patched = 0
        #: The run was found on the server (made by another job, run directory or host).
        self.adopted = False

    @property
    def _frozen(self) -> bool:
        """True when the run is no longer a draft: nothing may be sent to it."""
        return str(self._run.get("status", "draft")) != "draft"

    async def prepare(self, api: ApiSession, secret: bytes) -> None:
        self._secret = secret
        await self._check_pay_group(api)
        await self._resolve_employees(api)
        known = self._meta.get(META_RUN_ID)
        self._run = (
            await read_page(api, f"payroll_runs/{known}", {})
            if known
            else await self._find_or_create_run(api)
        )
        self.run_id = str(self._run["payroll_run_id"])
        self._meta.set(META_RUN_ID, self.run_id)
        if not self._meta.get(META_SUBMITTED):
            # Until finish submits it (or finds it submitted as the file says), the job's
            # work is not done, whatever its rows say: ``status`` must not read "finished".
            self._leave(
                f"payroll run {self.run_id} was submitted before this job; not yet compared "
                "with the file"
                if self._frozen
                else f"payroll run {self.run_id} left in draft: not submitted",
                "flexpay-batch resume RUN_DIR",
            )
        await self._read_items(api)

    async def prepare_read_only(self, api: ApiSession) -> tuple[str, ...]:
        """``prepare`` with reads only (``payroll --dry-run``): the pay group, the employees,
        and the period's regular run with its items if the server has one. No run is created
        (an off-cycle run is always a new one) and no journal is consulted."""
        await self._check_pay_group(api)
        await self._resolve_employees(api)
        found = None if self.off_cycle else await self._regular_run(api)
        if found is None:
            return (preview.new_run_sentence(self.period.describe(), off_cycle=self.off_cycle),)
        self.adopted = True
        self._run = found
        self.run_id = str(found["payroll_run_id"])
        await self._read_items(api)
        return (preview.found_run_sentence(self.period.describe(), found, len(self._server_items)),)

    def planned_request(self, model: RowModel) -> str | None:
        assert isinstance(model, PayrollRow)
        employee_id = self.employee_id_for(model)
        assert employee_id is not None  # ``check`` passed the row
        wanted = self._file_items[employee_id]
        return preview.planned_request(self.run_id, wanted, self._server_items.get(employee_id))

    def forecast_finish(
        self, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """``finish``'s judgement on what ``prepare_read_only`` read, nothing sent."""
        server = {e: ItemFigures.of_item(item) for e, item in self._server_items.items()}
        if self._frozen:
            return self._submitted_report(self._run, server, all_accepted, sent="would be sent")
        return preview.DraftForecast(
            run_name=f"payroll run {self.run_id}" if self.run_id else "the new payroll run",
            file_items=self._file_items,
            server_items=server,
            file_count=file_count,
            file_total=file_total,
            all_accepted=all_accepted,
            expected_count=self.control.item_count,
            expected_total=self.control.total,
            pay_date_problems=self._pay_date_differs(self._run),
            submit=self.submit,
            prune=self.prune,
        ).report()

    async def _read_items(self, api: ApiSession) -> None:
        items = await list_all(api, f"payroll_runs/{self.run_id}/items")
        self._server_items = {str(item.get("employee_id")): item for item in items}

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

    async def _find_or_create_run(self, api: ApiSession) -> dict[str, Any]:
        if not self.off_cycle:
            existing = await self._regular_run(api)
            if existing is not None:
                self.adopted = True
                return existing
        body = {**self.period.body(), "type": OFF_CYCLE if self.off_cycle else REGULAR}
        # Derived from this job's secret: a resumed job replays its own create; another job
        # (another run directory or host) gets its own key and, for a regular run, the 409
        # below instead of a second run.
        key = "fpb_run_" + keyed_hash(self._secret, "payroll_run|" + "|".join(body.values()))
        try:
            reply = await api.request("POST", "payroll_runs", json_body=body, idempotency_key=key)
        except errors.Conflict as conflict:
            existing_id = id_of_existing(conflict, "payroll_run_exists", "payroll_run_id")
            if existing_id is None:
                raise
            self.adopted = True
            return await read_page(api, f"payroll_runs/{existing_id}", {})
        return reply.body

    async def _regular_run(self, api: ApiSession) -> dict[str, Any] | None:
        query: dict[str, str | int] = {
            "pay_group_id": self.period.pay_group_id,
            "period_start": self.period.period_start.isoformat(),
            "period_end": self.period.period_end.isoformat(),
            "type": REGULAR,
        }
        runs = await list_all(api, "payroll_runs", params=query)
        # Filtered here too: a server that ignores a filter must not hand us another period's
        # (or an off-cycle) run to reconcile.
        wanted = {k: v for k, v in query.items() if k != "type"}
        for run in runs:
            if run.get("type", REGULAR) == REGULAR and all(
                run.get(k) == v for k, v in wanted.items()
            ):
                return run
        return None

    def employee_id_for(self, model: PayrollRow) -> str | None:
        if model.employee_id is not None:
            return model.employee_id if model.employee_id in self._employee_ids else None
        assert model.employee_external_id is not None
        return self._by_external_id.get(model.employee_external_id)

    def check(self, model: RowModel) -> RowRejection | None:
        assert isinstance(model, PayrollRow)
        employee_id = self.employee_id_for(model)
        field = "employee_id" if model.employee_id is not None else "employee_external_id"
        if employee_id is None:
            return RowRejection(field, "unknown_employee", "no such employee in this organisation")
        if employee_id in self._file_items:
            # One named by external id, the other by FlexPay id: the same person twice.
            return RowRejection(
                field, "duplicate", "another row of the file is for the same employee"
            )
        wanted = ItemFigures.of_body(model.to_request_body(employee_id))
        self._file_items[employee_id] = wanted
        server = self._server_items.get(employee_id)
        server_figures = ItemFigures.of_item(server) if server is not None else None
        if self._frozen:
            if server_figures is None:
                return RowRejection(
                    field,
                    "payroll_already_submitted",
                    f"run {self.run_id} is already submitted without an item for this employee",
                )
            if not server_figures.same_as(wanted):
                changed = ", ".join(server_figures.changed(wanted))
                return RowRejection(
                    field,
                    "payroll_already_submitted",
                    f"run {self.run_id} is already submitted with other figures ({changed})",
                )
        elif server_figures is not None and server_figures.currency != wanted.currency:
            return RowRejection(
                "currency",
                "currency_mismatch",
                f"run {self.run_id} holds this employee's item in {server_figures.currency}; "
                "a currency cannot be changed (delete the item, e.g. with --prune, and re-run)",
            )
        return None

    def body_for(self, model: RowModel) -> Mapping[str, Any]:
        assert isinstance(model, PayrollRow)
        employee_id = self.employee_id_for(model)
        assert employee_id is not None
        return model.to_request_body(employee_id)

    def encoded_body_for(self, model: RowModel) -> tuple[Mapping[str, Any], bytes, str]:
        body = self.body_for(model)
        return (body, *encode_body(body))

    def amount_of(self, model: RowModel) -> Decimal:
        assert isinstance(model, PayrollRow)
        return model.gross_amount

    def already_done(self, task: RowTask) -> str | None:
        """The item's id when the run already holds exactly this row: nothing to send."""
        item = self._server_items.get(str(task.body.get("employee_id")))
        if item is None:
            return None
        if ItemFigures.of_item(item).same_as(ItemFigures.of_body(task.body)):
            return str(item.get("item_id"))
        return None

    async def send(self, client: FlexPayClient, task: RowTask) -> ApiResponse:
        existing = self._server_items.get(str(task.body.get("employee_id")))
        if existing is not None:
            return await self._patch(client, task, existing)
        try:
            return await client.request(
                "POST",
                f"payroll_runs/{self.run_id}/items",
                json_body=task.body,
                idempotency_key=task.idempotency_key,
            )
        except errors.Conflict as conflict:
            item_id = conflict.details.get("item_id")
            if conflict.code != "item_exists" or not isinstance(item_id, str):
                raise
            # Added since this job read the run (another host, or a job killed after its
            # POST): adopt it. Its figures are unknown here, so every patchable field is sent.
            return await self._patch(client, task, {"item_id": item_id})

    async def _patch(
        self, client: FlexPayClient, task: RowTask, item: Mapping[str, Any]
    ) -> ApiResponse:
        item_id = str(item.get("item_id"))
        wanted = ItemFigures.of_body(task.body)
        if "gross_amount" in item:
            before: Mapping[str, Any] = item
            patch = ItemFigures.of_item(item).patch_to(wanted)
        else:
            before = {}
            patch = ItemFigures(None, None, None, None).patch_to(wanted)
            patch.setdefault("hours", None)
            patch.setdefault("memo", None)
        # The key covers the figures it changes from as well as to: the same change replays
        # after a crash, but an item someone changed back since is patched again, not
        # answered with the old reply.
        change = {"from": {k: before.get(k) for k in PATCHABLE}, "to": patch}
        key = idempotency_key(self._secret, "payroll_item_patch", item_id, body_sha256(change))
        reply = await client.request(
            "PATCH",
            f"payroll_runs/{self.run_id}/items/{item_id}",
            json_body=patch,
            idempotency_key=key,
        )
        self.patched += 1
        return reply

    def server_id(self, reply: ApiResponse) -> str | None:
        return id_in_reply(reply, "item_id")

    def existing_id(self, conflict: errors.Conflict) -> str | None:
        return id_of_existing(conflict, "item_exists", "item_id")

    async def look_up(self, api: ApiSession, task: RowTask) -> str | None:
        # The run's items were read in ``prepare`` (``already_done``), and the server keeps
        # one item per employee per run, answering a second add with 409 and the item's id.
        return None

    async def finish(
        self, api: ApiSession, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """Compare the run with the file (and control figures); prune; submit when they agree.

        The report says what was submitted, or what differs (and is then ``incomplete``: the
        run stays in draft, or the submitted run does not match the file).
        """
        if self._meta.get(META_SUBMITTED):
            return FinishReport((f"payroll run {self.run_id} was already submitted",))
        run = await read_page(api, f"payroll_runs/{self.run_id}", {})
        if run.get("status") != "draft":
            return await self._compare_submitted(api, run, all_accepted)
        messages: list[str] = []
        if self.adopted:
            messages.append(
                f"payroll run {self.run_id}: the period's draft, found on the server and "
                "reconciled with the file"
            )
        if self.patched:
            messages.append(f"payroll run {self.run_id}: {self.patched} items changed (PATCH)")
        server = await self._server_figures(api)
        diff = compare(self._file_items, server)
        if diff.extra and self.prune:
            if all_accepted:
                await self._delete(api, diff.extra)
                messages.append(
                    f"payroll run {self.run_id}: deleted {len(diff.extra)} items for employees "
                    "not in the file (--prune)"
                )
                server = await self._server_figures(api)
                diff = compare(self._file_items, server)
                run = await read_page(api, f"payroll_runs/{self.run_id}", {})
            else:
                messages.append(
                    f"payroll run {self.run_id}: --prune deletes nothing while rows of the "
                    "file are rejected or unfinished"
                )
        differences = _differences(run, file_count, file_total, self.control, all_accepted)
        differences += [d for d in diff.sentences() if d not in differences]
        if diff.extra and not self.prune:
            differences.append("--prune deletes the items of employees not in the file")
        differences += self._pay_date_differs(run)
        if differences:
            messages += [f"payroll run {self.run_id} left in draft: {d}" for d in differences]
            self._leave(
                f"payroll run {self.run_id} left in draft: not submitted, it differs from the "
                "file or the control figures (see report.json)",
                "fix the file or the figures, then run the same payroll command again",
            )
            return FinishReport(tuple(messages), incomplete=True)
        if not self.submit:
            messages.append(f"payroll run {self.run_id} is ready and left in draft (--no-submit)")
            self._leave(
                f"payroll run {self.run_id} left in draft: not submitted (--no-submit)",
                "to submit it, run the same payroll command without --no-submit",
            )
            return FinishReport(tuple(messages))
        try:
            await self._submit(api, file_count, file_total, server)
        except errors.Conflict as conflict:
            if conflict.code != "payroll_run_not_draft":
                raise
            # Submitted by another host between our read and our submit.
            run = await read_page(api, f"payroll_runs/{self.run_id}", {})
            return await self._compare_submitted(api, run, all_accepted)
        messages.append(
            f"payroll run {self.run_id} submitted: {file_count} items, total {file_total}"
        )
        return FinishReport(tuple(messages))

    async def _server_figures(self, api: ApiSession) -> dict[str, ItemFigures]:
        items = await list_all(api, f"payroll_runs/{self.run_id}/items")
        return {str(item.get("employee_id")): ItemFigures.of_item(item) for item in items}

    async def _delete(self, api: ApiSession, employees: list[str]) -> None:
        items = await list_all(api, f"payroll_runs/{self.run_id}/items")
        by_employee = {str(item.get("employee_id")): str(item.get("item_id")) for item in items}
        for employee in employees:
            item_id = by_employee.get(employee)
            if item_id is None:
                continue
            key = idempotency_key(self._secret, "payroll_item_delete", item_id, "")
            try:
                await api.request(
                    "DELETE",
                    f"payroll_runs/{self.run_id}/items/{item_id}",
                    idempotency_key=key,
                )
            except errors.NotFound:
                continue  # deleted by an earlier attempt whose reply was lost

    def _pay_date_differs(self, run: Mapping[str, Any]) -> list[str]:
        theirs = run.get("pay_date")
        ours = self.period.pay_date.isoformat()
        if theirs is None or theirs == ours:
            return []
        return [f"the run's pay date is {theirs}, this command says {ours} (--pay-date)"]

    async def _compare_submitted(
        self, api: ApiSession, run: Mapping[str, Any], all_accepted: bool
    ) -> FinishReport:
        report = self._submitted_report(run, await self._server_figures(api), all_accepted)
        if report.incomplete:
            self._leave(
                f"payroll run {self.run_id} was already submitted and differs from the file; "
                "nothing sent",
                "for a correction run, run the payroll command with --off-cycle",
            )
        else:
            self._mark_submitted()
        return report

    def _mark_submitted(self) -> None:
        self._meta.set(META_SUBMITTED, "true")
        self._leave("", "")

    def _leave(self, unfinished: str, next_step: str) -> None:
        """Journal what of the job's own work is left (empty: nothing) and what to do next."""
        self._meta.set(META_UNFINISHED_WORK, unfinished)
        self._meta.set(META_NEXT_STEP, next_step)

    def _submitted_report(
        self,
        run: Mapping[str, Any],
        server: Mapping[str, ItemFigures],
        all_accepted: bool,
        *,
        sent: str = "sent",
    ) -> FinishReport:
        """The finish of a run that is already submitted: whether it matches the file."""
        diff = compare(self._file_items, server)
        head = (
            f"payroll for {self.period.describe()} was already submitted as {self.run_id} "
            f"on {run.get('submitted_at') or 'an earlier run'}"
        )
        problems = diff.sentences() + self._pay_date_differs(run)
        if not all_accepted and diff.none:
            problems.append("some rows of the file were rejected (see rejects.csv)")
        if not problems:
            return FinishReport((f"{head}; it matches the file; nothing {sent}",))
        return FinishReport(
            (
                f"{head}; it differs from the file; nothing {sent}",
                *(f"payroll run {self.run_id}: {p}" for p in problems),
                "for a deliberate correction run, run the command with --off-cycle",
            ),
            incomplete=True,
        )

    async def _submit(
        self, api: ApiSession, count: int, total: Decimal, server: Mapping[str, ItemFigures]
    ) -> None:
        body = {"expected_item_count": count, "expected_total": f"{total:.2f}"}
        # The key covers the run's items as just read, not only the figures: the server keeps
        # 4xx answers for a key, so a submit refused after a concurrent change must not be
        # replayed once the run is right again, while a lost reply for the same state is.
        state = sorted((e, repr(f)) for e, f in server.items())
        seed = f"{self.run_id}|{count}|{total:.2f}|{state!r}"
        digest = hashlib.sha256(seed.encode()).hexdigest()
        key = f"fpb_submit_{digest[:40]}"
        await api.request(
            "POST", f"payroll_runs/{self.run_id}/submit", json_body=body, idempotency_key=key
        )
        self._mark_submitted()


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
    # submitted by the same command with the right figure. ``prune``: the report names the
    # extra items, then the operator deletes them with the same command and ``--prune``.
    changeable_parameters=frozenset({"submit", "expected_total", "expected_item_count", "prune"}),
    build=_build,
    # The file is the truth for the period's run: a fixed file is a new job that adopts and
    # reconciles the same run (server guards, not the journal, keep it from paying twice).
    new_job_when_input_changes=True,
)
