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
from typing import Any, Literal, get_args

FAULT_KINDS = ("reset", "error_500", "error_503", "slow", "commit_drop")
#: What can happen to a payroll item (each counted, and by run and employee).
ItemChange = Literal["added", "patched", "deleted"]


class EffectLog:
    """Counters of committed effects and of answered requests."""

    __slots__ = (
        "by_external_id",
        "by_idempotency_key",
        "by_status",
        "employees_created",
        "faults",
        "item_changes",
        "items_by_change",
        "runs_by_period",
        "runs_created",
        "runs_submitted",
        "submitted_by_period",
    )

    def __init__(self) -> None:
        self.employees_created = 0
        self.runs_created = 0
        self.item_changes: Counter[ItemChange] = Counter()
        self.by_external_id: Counter[str] = Counter()
        self.items_by_change: dict[ItemChange, Counter[str]] = {
            change: Counter() for change in get_args(ItemChange)
        }
        self.runs_submitted: Counter[str] = Counter()
        self.runs_by_period: Counter[str] = Counter()
        self.submitted_by_period: Counter[str] = Counter()
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

    def item_changed(
        self, change: ItemChange, run_id: str, employee_id: str, idempotency_key: str | None
    ) -> None:
        """One payroll item of ``employee_id`` in ``run_id`` added, patched or deleted."""
        self.item_changes[change] += 1
        self.items_by_change[change][f"{run_id}:{employee_id}"] += 1
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
                "added": self.item_changes["added"],
                "by_run_and_employee": dict(self.items_by_change["added"]),
            },
            "runs_submitted": dict(self.runs_submitted),
            "payroll_runs_by_period": dict(self.runs_by_period),
            "runs_submitted_by_period": dict(self.submitted_by_period),
            "payroll_item_changes": {
                "patched": self.item_changes["patched"],
                "deleted": self.item_changes["deleted"],
                "patched_by_run_and_employee": dict(self.items_by_change["patched"]),
                "deleted_by_run_and_employee": dict(self.items_by_change["deleted"]),
            },
            "by_idempotency_key": dict(self.by_idempotency_key),
            "requests": {"total": self.by_status.total(), "by_status": dict(self.by_status)},
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
        }
