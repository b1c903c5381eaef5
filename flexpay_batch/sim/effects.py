"""The ledger of effects the simulator applied, for proving "exactly once".

An effect is counted at the moment it is committed to the store, before any response is
written, so a commit-then-drop fault still counts. ``snapshot()`` is the JSON served at
``GET /_sim/effects``::

    {"employees": {"created": N, "by_external_id": {"ext-1": 1}},
     "payroll_runs": {"created": N},
     "payroll_items": {"added": N, "by_run_and_employee": {"run_id:employee_id": 1}},
     "runs_submitted": {"run_id": 1},
     "payroll_runs_by_period": {"pg_biweekly:2024-06-01:2024-06-14:regular": 1},
     "runs_submitted_by_period": {"pg_biweekly:2024-06-01:2024-06-14:regular": 1},
     "payroll_item_changes": {"patched": N, "deleted": N,
                              "patched_by_run_and_employee": {"run_id:employee_id": 1},
                              "deleted_by_run_and_employee": {"run_id:employee_id": 1}},
     "by_idempotency_key": {"key": 1},
     "requests": {"total": N, "by_status": {"200": N, "dropped": N}},
     "faults": {"reset": N, "error_500": N, "error_503": N, "slow": N, "commit_drop": N}}

Counts per external id, per period and per idempotency key are summed over organisations
(tests use one). A period key is ``pay_group_id:period_start:period_end:type`` (type
``regular`` or ``off_cycle``). Any count above 1 in ``by_external_id``, ``runs_submitted``,
``runs_submitted_by_period`` (for a regular run) or ``by_idempotency_key`` is a duplicate
effect. ``payroll_items.by_run_and_employee`` counts adds: an item deleted and added again
counts 2 there and 1 in ``deleted_by_run_and_employee``, so the items a run holds now are the
adds minus the deletes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

FAULT_KINDS = ("reset", "error_500", "error_503", "slow", "commit_drop")


class EffectLog:
    """Counters of committed effects and of answered requests."""

    __slots__ = (
        "by_external_id",
        "by_idempotency_key",
        "by_run_and_employee",
        "by_status",
        "deleted_by_run_and_employee",
        "employees_created",
        "faults",
        "items_added",
        "items_deleted",
        "items_patched",
        "patched_by_run_and_employee",
        "runs_by_period",
        "runs_created",
        "runs_submitted",
        "submitted_by_period",
    )

    def __init__(self) -> None:
        self.employees_created = 0
        self.runs_created = 0
        self.items_added = 0
        self.items_patched = 0
        self.items_deleted = 0
        self.by_external_id: Counter[str] = Counter()
        self.by_run_and_employee: Counter[str] = Counter()
        self.runs_submitted: Counter[str] = Counter()
        self.runs_by_period: Counter[str] = Counter()
        self.submitted_by_period: Counter[str] = Counter()
        self.patched_by_run_and_employee: Counter[str] = Counter()
        self.deleted_by_run_and_employee: Counter[str] = Counter()
        self.by_idempotency_key: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def _keyed(self, idempotency_key: str | None) -> None:
        if idempotency_key is not None:
            self.by_idempotency_key[idempotency_key] += 1

    def employee_created(self, external_id: str, idempotency_key: str | None) -> None:
        self.employees_created += 1
        self.by_external_id[external_id] += 1
        self._keyed(idempotency_key)

    def run_created(self, period_key: str, idempotency_key: str | None) -> None:
        self.runs_created += 1
        self.runs_by_period[period_key] += 1
        self._keyed(idempotency_key)

    def item_added(self, run_id: str, employee_id: str, idempotency_key: str | None) -> None:
        self.items_added += 1
        self.by_run_and_employee[f"{run_id}:{employee_id}"] += 1
        self._keyed(idempotency_key)

    def item_patched(self, run_id: str, employee_id: str, idempotency_key: str | None) -> None:
        self.items_patched += 1
        self.patched_by_run_and_employee[f"{run_id}:{employee_id}"] += 1
        self._keyed(idempotency_key)

    def item_deleted(self, run_id: str, employee_id: str, idempotency_key: str | None) -> None:
        self.items_deleted += 1
        self.deleted_by_run_and_employee[f"{run_id}:{employee_id}"] += 1
        self._keyed(idempotency_key)

    def run_submitted(self, run_id: str, period_key: str, idempotency_key: str | None) -> None:
        self.runs_submitted[run_id] += 1
        self.submitted_by_period[period_key] += 1
        self._keyed(idempotency_key)

    def answered(self, status: int | str) -> None:
        """Count one request by its final status (or ``"dropped"``: no response was sent)."""
        self.by_status[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        """The inspection report (see the module docstring), as fresh JSON-ready dicts."""
        return {
            "employees": {
                "created": self.employees_created,
                "by_external_id": dict(self.by_external_id),
            },
            "payroll_runs": {"created": self.runs_created},
            "payroll_items": {
                "added": self.items_added,
                "by_run_and_employee": dict(self.by_run_and_employee),
            },
            "runs_submitted": dict(self.runs_submitted),
            "payroll_runs_by_period": dict(self.runs_by_period),
            "runs_submitted_by_period": dict(self.submitted_by_period),
            "payroll_item_changes": {
                "patched": self.items_patched,
                "deleted": self.items_deleted,
                "patched_by_run_and_employee": dict(self.patched_by_run_and_employee),
                "deleted_by_run_and_employee": dict(self.deleted_by_run_and_employee),
            },
            "by_idempotency_key": dict(self.by_idempotency_key),
            "requests": {"total": self.by_status.total(), "by_status": dict(self.by_status)},
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
        }
