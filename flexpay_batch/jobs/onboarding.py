"""Bulk onboarding: each valid row becomes one ``POST /employees``.

Pre-flight reads the organisation's pay groups and employment types, so a row naming an
unknown one is rejected before any write quota is spent. The customer's ``external_id`` is
the row's identity: a duplicate inside the file is rejected by validation, and a 409
``employee_exists`` from the server means the employee is already there (recorded as
"already existed" with the existing id, not as a failure).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flexpay_batch.core import errors
from flexpay_batch.core.keys import encode_canonical
from flexpay_batch.input.columns import ONBOARDING_COLUMNS, ONBOARDING_REFERENCE_COLUMNS
from flexpay_batch.input.models import OnboardingRow, RowModel
from flexpay_batch.jobs.base import (
    FinishReport,
    JobContext,
    JobSpec,
    RowRejection,
    RowTask,
    id_in_reply,
    id_of_existing,
)
from flexpay_batch.jobs.lookups import list_all, read_ids

# Types only: validate and status load the jobs without aiohttp (start-up cost).
if TYPE_CHECKING:
    from flexpay_batch.api.client import ApiResponse, FlexPayClient
    from flexpay_batch.api.session import ApiSession


class OnboardingJob:
    """Create employees from an onboarding file."""

    def __init__(self) -> None:
        self._pay_groups: frozenset[str] = frozenset()
        self._employment_types: frozenset[str] = frozenset()

    async def prepare(self, api: ApiSession, secret: bytes) -> None:
        self._pay_groups = await read_ids(api, "pay_groups")
        self._employment_types = await read_ids(api, "employment_types")

    def check(self, model: RowModel) -> RowRejection | None:
        assert isinstance(model, OnboardingRow)
        if model.pay_group_id not in self._pay_groups:
            return RowRejection(
                "pay_group_id",
                "unknown_pay_group",
                "pay group is not one of this organisation's pay groups "
                f"({', '.join(sorted(self._pay_groups))})",
            )
        if model.employment_type not in self._employment_types:
            return RowRejection(
                "employment_type",
                "unknown_employment_type",
                f"employment type is not one of {', '.join(sorted(self._employment_types))}",
            )
        return None

    def body_for(self, model: RowModel) -> Mapping[str, Any]:
        assert isinstance(model, OnboardingRow)
        return model.to_request_body()

    def encoded_body_for(self, model: RowModel) -> tuple[Mapping[str, Any], bytes, str]:
        # The canonical JSON written by the model, not encoded from the dict (~8 us a row),
        # and the dict itself only built if something reads it (~3 us).
        assert isinstance(model, OnboardingRow)
        return (_RequestBody(model), *encode_canonical(model.request_body_json()))

    def amount_of(self, model: RowModel) -> Decimal:
        return Decimal(0)

    async def send(self, client: FlexPayClient, task: RowTask) -> ApiResponse:
        if task.wire_body:
            return await client.request(
                "POST", "employees", body=task.wire_body, idempotency_key=task.idempotency_key
            )
        return await client.request(
            "POST", "employees", json_body=dict(task.body), idempotency_key=task.idempotency_key
        )

    def server_id(self, reply: ApiResponse) -> str | None:
        return id_in_reply(reply, "employee_id")

    def existing_id(self, conflict: errors.Conflict) -> str | None:
        return id_of_existing(conflict, "employee_exists", "employee_id")

    async def look_up(self, api: ApiSession, task: RowTask) -> str | None:
        found = await list_all(api, "employees", params={"external_id": task.identity})
        for employee in found:
            found_id = employee.get("employee_id")
            if employee.get("external_id") == task.identity and isinstance(found_id, str):
                return found_id
        return None

    def already_done(self, task: RowTask) -> str | None:
        # The 409 employee_exists answer (``existing_id``) is the check: no list to compare.
        return None

    async def finish(
        self, api: ApiSession, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """Nothing to do at run level: each employee is complete once created."""
        return FinishReport()

    async def prepare_read_only(self, api: ApiSession) -> tuple[str, ...]:
        """The pre-flight only reads (pay groups, employment types): it is ``prepare``."""
        await self.prepare(api, b"")
        return ()

    def planned_request(self, model: RowModel) -> str | None:
        # Whether the employee exists is the server's 409 to tell: every row is sent.
        return "POST /employees"

    def forecast_finish(
        self, *, file_count: int, file_total: Decimal, all_accepted: bool
    ) -> FinishReport:
        """Nothing at run level."""
        return FinishReport()


class _RequestBody(Mapping[str, Any]):
    """``model.to_request_body()``, built on first use.

    A planned task is sent as its ``wire_body``; its ``body`` is read only by whatever asks
    (a fallback send, a test), so most rows never build the dict. Equal to it, shown as it.
    """

    __slots__ = ("_body", "_model")

    def __init__(self, model: OnboardingRow) -> None:
        self._model = model
        self._body: dict[str, object] | None = None

    def _built(self) -> dict[str, object]:
        if self._body is None:
            self._body = self._model.to_request_body()
        return self._body

    def __getitem__(self, key: str) -> Any:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return repr(self._built())


def _build(parameters: Mapping[str, Any], context: JobContext) -> OnboardingJob:
    """Onboarding takes no parameters."""
    return OnboardingJob()


SPEC = JobSpec(
    name="onboarding",
    model=OnboardingRow,
    columns=ONBOARDING_COLUMNS,
    marker_columns=frozenset(),
    reference_columns=ONBOARDING_REFERENCE_COLUMNS,
    reference_header="external_id",
    server_id_header="employee_id",
    moves_money=False,
    changeable_parameters=frozenset(),
    build=_build,
    command="onboard",
    rows_carry_over=True,
)
