"""After the server's idempotency memory may have expired, resume looks rows up before writing.

The contract keeps keys for 24 hours; a run resumed later than that cannot count on a replay,
so every unsettled row is first looked up by its natural key (``GET /employees?external_id=``)
and created only if it is not there (reliability-notes.md: unknowns are resolved by looking
up, never by sending under a new key).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flexpay_batch.input.models import OnboardingRow
from tests.conftest import MakeSimulator
from tests.engine.test_engine_integration import (
    assert_all_done,
    assert_exactly_once,
    engine_settings,
    onboarding_request,
    run_on,
    status_count,
)
from tests.harness import fast_limits, write_onboarding

#: GET /pay_groups and GET /employment_types, the onboarding job's pre-flight reads.
PREFLIGHT_READS = 2
LIMITS = fast_limits()


async def test_rows_past_the_key_lifetime_are_looked_up_before_any_write(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Past the key lifetime, rows already on the server are recorded as existing, unsent."""
    sim = await make_simulator(limits=LIMITS)
    people = write_onboarding(source := tmp_path / "people.csv", 40, prefix="KT")
    # An earlier attempt applied the first 15 rows and its replies were lost long ago.
    bodies = [OnboardingRow.model_validate(row).to_request_body() for row in people[:15]]
    assert sim.seed_employees(bodies) == 15
    seeded_ids = {e["external_id"] for e in _employees(sim)}

    settings = dataclasses.replace(
        engine_settings(sim, tmp_path / "run", limits=LIMITS), key_ttl=1e-6
    )
    summary = await run_on(sim, onboarding_request(source, settings))

    assert_all_done(summary, 40)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 409) == 0  # no POST was sent for a row that was there
    assert status_count(effects, 200) == PREFLIGHT_READS + 40  # one look-up per row
    assert summary.counts["already_existed"] == 15
    assert summary.counts["created"] == 25
    assert seeded_ids == {row["external_id"] for row in people[:15]}


async def test_rows_within_the_key_lifetime_are_sent_without_a_look_up(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Within the key lifetime no look-up is made: the key itself settles a lost reply."""
    sim = await make_simulator(limits=LIMITS)
    people = write_onboarding(source := tmp_path / "people.csv", 20, prefix="KL")
    settings = engine_settings(sim, tmp_path / "run", limits=LIMITS)
    summary = await run_on(sim, onboarding_request(source, settings))
    assert_all_done(summary, 20)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 200) == PREFLIGHT_READS  # no look-ups, only the pre-flight
    assert status_count(effects, 201) == 20


def _employees(sim: object) -> list[dict[str, str]]:
    store = sim.state.store  # type: ignore[attr-defined]
    org = store.org("org_1")
    return [{"external_id": e.data.external_id} for e in org.employee_order]
