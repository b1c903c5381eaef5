"""Payroll reconciliation in process against the simulator over HTTPS (issue 11).

The engine runs in the test's event loop, so a race with "another host" can be staged exactly
(the period's run created between our look-up and our create), and a property test can drive
many sequences of file versions, run directories and interruptions in a few seconds each.
Every check reads the simulator's effect ledger.
"""

from __future__ import annotations

import asyncio
import csv
import random
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.run import run_job
from flexpay_batch.input.columns import PAYROLL_COLUMNS
from flexpay_batch.jobs import payroll as payroll_job
from flexpay_batch.jobs.payroll import ControlTotals, PayPeriod, payroll_parameters
from flexpay_batch.sim import SimConfig, Simulator
from flexpay_batch.sim.testing import SimClient, employee_body
from tests.engine.test_engine_integration import engine_settings
from tests.harness import fast_limits

pytestmark = pytest.mark.slow

LIMITS = fast_limits(writes_per_second=2000.0, write_burst=200)
PERIOD = PayPeriod(
    pay_group_id="pg_weekly",
    period_start=date(2026, 3, 2),
    period_end=date(2026, 3, 8),
    pay_date=date(2026, 3, 13),
)
PERIOD_KEY = "pg_weekly:2026-03-02:2026-03-08:regular"


async def add_employees(sim: Simulator, count: int) -> list[str]:
    """Create ``count`` employees directly; return their external ids."""
    externals = [f"IP{n:04d}" for n in range(count)]
    async with SimClient(sim) as api:
        for ext in externals:
            reply = await api.post("employees", json=employee_body(ext))
            assert reply.status == 201, reply.text
    return externals


def write_pay(path: Path, rows: Mapping[str, tuple[str, str]]) -> Path:
    """A payroll file: external id -> (gross, hours)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PAYROLL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for ext, (gross, hours) in rows.items():
            writer.writerow(
                {
                    "employee_external_id": ext,
                    "gross_amount": gross,
                    "hours": hours,
                    "currency": "USD",
                }
            )
    return path


async def run_payroll(
    sim: Simulator, file: Path, run_dir: Path, *, prune: bool = False, submit: bool = True
) -> RunSummary:
    settings = engine_settings(sim, run_dir, limits=LIMITS)
    request = RunRequest(
        kind="payroll",
        input_path=file,
        settings=settings,
        run_dir=run_dir,
        parameters=payroll_parameters(PERIOD, submit=submit, control=ControlTotals(), prune=prune),
    )
    return await run_job(
        request, base_url=sim.base_url, ca_bundle=sim.ca_path, token=sim.tokens["admin"]
    )


async def server_items(sim: Simulator, run_id: str) -> dict[str, tuple[Decimal, Decimal | None]]:
    """The run's items by external id: (gross, hours)."""
    async with SimClient(sim) as api:
        employees = (await api.get("employees", params={"limit": "100"})).json["data"]
        by_id = {e["employee_id"]: e["external_id"] for e in employees}
        items = (await api.get(f"payroll_runs/{run_id}/items", params={"limit": "100"})).json
        assert not items["has_more"]
        return {
            by_id[i["employee_id"]]: (
                Decimal(i["gross_amount"]),
                None if i["hours"] is None else Decimal(i["hours"]),
            )
            for i in items["data"]
        }


async def regular_runs(sim: Simulator) -> list[dict[str, Any]]:
    async with SimClient(sim) as api:
        reply = await api.get("payroll_runs", params={"type": "regular"})
        runs: list[dict[str, Any]] = reply.json["data"]
        return runs


def as_figures(rows: Mapping[str, tuple[str, str]]) -> dict[str, tuple[Decimal, Decimal | None]]:
    return {ext: (Decimal(g), Decimal(h) if h else None) for ext, (g, h) in rows.items()}


async def test_a_run_created_by_another_host_after_our_look_up_is_adopted(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """409 payroll_run_exists on create (a race with another host) adopts the named run."""
    sim = await make_simulator(limits=LIMITS)
    externals = await add_employees(sim, 5)
    async with SimClient(sim) as api:
        body = {**PERIOD.body(), "type": "regular"}
        other = (await api.post("payroll_runs", json=body)).json["payroll_run_id"]

    async def nothing_found(self: object, api: object) -> None:
        return None  # the look-up ran before the other host's create

    monkeypatch.setattr(payroll_job.PayrollJob, "_regular_run", nothing_found)
    rows = {ext: ("100.00", "") for ext in externals}
    summary = await run_payroll(sim, write_pay(tmp_path / "p.csv", rows), tmp_path / "run")
    assert summary.exit_code == 0, summary.messages
    effects = sim.effects()
    assert effects["payroll_runs_by_period"] == {PERIOD_KEY: 1}
    assert effects["runs_submitted"] == {other: 1}
    assert await server_items(sim, other) == as_figures(rows)


async def _interrupted(sim: Simulator, file: Path, run_dir: Path, writes: int) -> None:
    """Run until ``writes`` more item writes landed, then cancel (a crash, in process)."""

    def item_writes() -> int:
        effects = sim.effects()
        changes = effects["payroll_item_changes"]
        return int(effects["payroll_items"]["added"] + changes["patched"] + changes["deleted"])

    target = item_writes() + writes
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while item_writes() < target:
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()

        async def work() -> None:
            await run_payroll(sim, file, run_dir, submit=False)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(work)


employee_versions = st.lists(
    st.tuples(
        # Which of 8 employees the version pays, and each one's gross in cents.
        st.dictionaries(st.integers(0, 7), st.integers(1, 500_000), min_size=1, max_size=8),
        st.sampled_from(["a", "b", "c"]),  # run directory
        st.integers(0, 6),  # item writes before the interruption (0: none, runs to the end)
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(versions=employee_versions)
def test_any_sequence_of_file_versions_and_crashes_ends_with_the_last_file_once(
    tmp_path_factory: pytest.TempPathFactory,
    versions: Sequence[tuple[dict[int, int], str, int]],
) -> None:
    """Whatever files were run (and interrupted) before, the last one with --prune leaves the
    period's one regular run holding exactly its items, submitted once, no key applied twice."""
    tmp = tmp_path_factory.mktemp("versions")

    async def scenario() -> None:
        async with Simulator(SimConfig(limits=LIMITS)) as sim:
            externals = await add_employees(sim, 8)
            file = tmp / "pay.csv"
            rows: dict[str, tuple[str, str]] = {}
            for paid, run_dir, writes in versions:
                rows = {externals[i]: (f"{cents / 100:.2f}", "") for i, cents in paid.items()}
                write_pay(file, rows)
                if writes:
                    await _interrupted(sim, file, tmp / run_dir, writes)
                else:
                    await run_payroll(sim, file, tmp / run_dir, submit=False)
            final_dir = tmp / random.Random(len(versions)).choice("abc")
            summary = await run_payroll(sim, file, final_dir, prune=True)
            assert summary.exit_code == 0, (summary.messages, summary.journal_counts)
            effects = sim.effects()
            (run,) = await regular_runs(sim)
            run_id = run["payroll_run_id"]
            assert effects["payroll_runs_by_period"] == {PERIOD_KEY: 1}
            assert effects["runs_submitted"] == {run_id: 1}
            assert set(effects["by_idempotency_key"].values()) <= {1}
            assert await server_items(sim, run_id) == as_figures(rows)
            # Adds minus deletes: every employee holds at most one item at any time.
            adds = effects["payroll_items"]["by_run_and_employee"]
            deletes = effects["payroll_item_changes"]["deleted_by_run_and_employee"]
            for key, count in adds.items():
                assert count - deletes.get(key, 0) in (0, 1)

    asyncio.run(scenario())
