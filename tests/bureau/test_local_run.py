"""``run_local`` against the simulator serving three organisations over real HTTPS: every
employee created once per organisation, the three in parallel, nothing again on a re-run, and
one organisation's revoked token stopping that organisation alone."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import anyio
import pytest

from flexpay_batch.bureau.local import LocalJob, prepare_jobs, run_local
from flexpay_batch.bureau.outcome import JobOutcome, overall_exit_code
from flexpay_batch.cli.bureau_progress import PlainBoard
from flexpay_batch.core import errors
from flexpay_batch.core.keys import derive_job_secret, token_fingerprint
from flexpay_batch.core.settings import load_settings
from flexpay_batch.engine.limiting import limiter_store
from flexpay_batch.engine.pipeline import StopControl
from flexpay_batch.sim import Simulator
from tests.api.test_redis_store import _redis_keys
from tests.bureau.kit import (
    Org,
    active_interval,
    created_per_prefix,
    jobs_env,
    journal_secret,
    onboard_jobs,
    payroll_job,
    sim_tokens,
    three_orgs,
    write_manifest,
)
from tests.conftest import MakeSimulator
from tests.harness import fast_limits
from tests.jobs.test_payroll_reconcile import pay, write_pay
from tests.redisserver import RedisServer

pytestmark = pytest.mark.slow

#: Low enough that each job sends for about a second, so that three run side by side.
LIMITS = fast_limits(writes_per_second=20.0, write_burst=5)
ROWS = 24


def _env(sim: Simulator, orgs: list[Org]) -> dict[str, str]:
    return {
        "FLEXPAY_BASE_URL": sim.base_url,
        "FLEXPAY_CA_BUNDLE": str(sim.ca_path),
        **jobs_env(orgs, LIMITS),
    }


async def _run(
    jobs: list[LocalJob], env: dict[str, str], state: Path, **options: object
) -> tuple[list[JobOutcome], bool, str]:
    stream = io.StringIO()
    board = PlainBoard([job.label for job in jobs], stream, interval=0.5)
    outcomes, interrupted = await run_local(
        jobs,
        env=env,
        state_dir=state,
        board=board,
        handle_signals=False,
        **options,  # type: ignore[arg-type]
    )
    return outcomes, interrupted, stream.getvalue()


def _manifest(tmp_path: Path, orgs: list[Org], *, payroll: bool = True) -> Path:
    jobs = onboard_jobs(tmp_path, orgs, ROWS)
    if payroll:
        first = orgs[0]
        ids = [f"{first.prefix}{n:05d}" for n in range(1, 6)]
        pay_file = write_pay(tmp_path / f"{first.name}-pay.csv", pay(ids))
        jobs.append(payroll_job(first, pay_file, expected_count=5))
    return write_manifest(tmp_path / "bureau.toml", jobs)


async def test_three_orgs_in_parallel_each_employee_once(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Three onboardings and a payroll: all done, each employee created once in its own
    organisation, the three onboardings' active intervals overlap; a re-run sends nothing."""
    orgs = three_orgs()
    sim = await make_simulator(tokens=sim_tokens(orgs), limits=LIMITS)
    env = _env(sim, orgs)
    state = tmp_path / "state"
    jobs = prepare_jobs(_manifest(tmp_path, orgs), env, state_dir=state)
    outcomes, interrupted, shown = await _run(jobs, env, state, concurrency=4)

    assert not interrupted
    assert [o.state for o in outcomes] == ["done"] * 4, shown
    assert overall_exit_code(outcomes, interrupted=False) == 0
    effects = sim.effects()
    for org in orgs:
        created = created_per_prefix(effects, org.prefix)
        assert list(created.values()) == [1] * ROWS, org.name
        assert sim.state.store.org(org.org_id).employees, org.name
    assert effects["runs_submitted_by_period"] == {"pg_weekly:2026-03-02:2026-03-08:regular": 1}
    # Overlap, from the journals: each onboarding's first send came before any one's last.
    intervals = [active_interval(o.run_dir) for o in outcomes[:3] if o.run_dir is not None]
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    assert "end: job 4 (acme, payroll): done" in shown

    again = prepare_jobs(_manifest(tmp_path, orgs), env, state_dir=state)
    outcomes, _, _ = await _run(again, env, state, concurrency=4)
    assert [o.state for o in outcomes] == ["done"] * 4
    assert [o.summary.counts.total() for o in outcomes if o.summary] == [0, 0, 0, 0]
    after = sim.effects()
    assert after["employees"]["created"] == 3 * ROWS
    assert after["by_idempotency_key"] == effects["by_idempotency_key"]


async def test_a_revoked_token_stops_its_org_alone(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """acme's token revoked before the run: its onboarding stops (exit 3) and its payroll is
    skipped; beta and chi finish every row; the run exits 3."""
    orgs = three_orgs()
    sim = await make_simulator(tokens=sim_tokens(orgs), limits=LIMITS)
    env = _env(sim, orgs)
    state = tmp_path / "state"
    jobs = prepare_jobs(_manifest(tmp_path, orgs), env, state_dir=state)
    sim.revoke(orgs[0].token)
    outcomes, _, shown = await _run(jobs, env, state, concurrency=4)

    states = [(o.label.org, o.label.kind, o.state, o.exit_code) for o in outcomes]
    assert states == [
        ("acme", "onboard", "stopped", 3),
        ("beta", "onboard", "done", 0),
        ("chi", "onboard", "done", 0),
        ("acme", "payroll", "skipped", 1),
    ], shown
    assert overall_exit_code(outcomes, interrupted=False) == 3
    for org in orgs[1:]:
        assert len(created_per_prefix(sim.effects(), org.prefix)) == ROWS


async def test_concurrency_one_runs_one_job_at_a_time(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """--concurrency 1: the onboardings' active intervals do not overlap. With a key secret
    each journal's job secret is the one derived from it and the job's identity."""
    orgs = three_orgs()
    sim = await make_simulator(tokens=sim_tokens(orgs), limits=LIMITS)
    env = _env(sim, orgs)
    state = tmp_path / "state"
    jobs = prepare_jobs(_manifest(tmp_path, orgs, payroll=False), env, state_dir=state)
    secret = b"bureau-key-secret-" * 2
    outcomes, _, _ = await _run(jobs, env, state, concurrency=1, key_secret=secret)
    assert [o.state for o in outcomes] == ["done"] * 3
    for job, outcome in zip(jobs, outcomes, strict=True):
        assert outcome.run_dir is not None
        assert journal_secret(outcome.run_dir) == derive_job_secret(secret, job.job.identity)
    intervals = sorted(active_interval(o.run_dir) for o in outcomes if o.run_dir is not None)
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end <= start


async def test_a_shared_limiter_store_serves_every_job(
    make_simulator: MakeSimulator, tmp_path: Path, redis_server: RedisServer
) -> None:
    """--limiter-url: every job's limiters live in the one Redis (keyed per token), and the
    three organisations still finish every row once."""
    orgs = three_orgs()
    sim = await make_simulator(tokens=sim_tokens(orgs), limits=LIMITS)
    env = _env(sim, orgs)
    state = tmp_path / "state"
    jobs = prepare_jobs(_manifest(tmp_path, orgs, payroll=False), env, state_dir=state)
    settings = load_settings(flags={"limiter_url": redis_server.url}, env={})
    async with limiter_store(settings) as store:
        outcomes, _, _ = await _run(jobs, env, state, store=store)
    assert [o.state for o in outcomes] == ["done"] * 3
    assert sim.effects()["employees"]["created"] == 3 * ROWS
    keys = await anyio.to_thread.run_sync(_redis_keys, redis_server.url)
    for org in orgs:
        assert f"flexpay-batch:limiter:{token_fingerprint(org.token)}:write" in keys
        assert not any(org.token in key for key in keys)


async def test_a_stop_mid_run_leaves_the_next_jobs_waiting_for_a_re_run(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """The operator's stop once rows flow: the running jobs stop (130), acme's payroll waits
    (not skipped); the same jobs again finish everything, each employee created once."""
    orgs = three_orgs()
    sim = await make_simulator(tokens=sim_tokens(orgs), limits=LIMITS)
    env = _env(sim, orgs)
    state = tmp_path / "state"
    manifest = _manifest(tmp_path, orgs)
    stop = StopControl()

    async def stop_once_rows_flow() -> None:
        while sim.effects()["employees"]["created"] < 10:
            await anyio.sleep(0.01)
        stop.request(errors.RunInterrupted("stopped by the test"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_once_rows_flow)
        jobs = prepare_jobs(manifest, env, state_dir=state)
        outcomes, interrupted, _ = await _run(jobs, env, state, stop=stop)
    assert interrupted
    assert [(o.state, o.exit_code) for o in outcomes] == [("stopped", 130)] * 3 + [("waiting", 130)]
    assert overall_exit_code(outcomes, interrupted=interrupted) == 130
    assert sim.effects()["employees"]["created"] < 3 * ROWS

    outcomes, interrupted, _ = await _run(prepare_jobs(manifest, env, state_dir=state), env, state)
    assert not interrupted
    assert [o.state for o in outcomes] == ["done"] * 4
    effects = sim.effects()
    for org in orgs:
        assert list(created_per_prefix(effects, org.prefix).values()) == [1] * ROWS
