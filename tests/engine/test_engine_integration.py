"""The engine end to end over real HTTPS against the in-process simulator (issue 3).

``runner.run_job`` runs in the test's event loop next to a ``Simulator`` with the contract's
limits scaled from per minute to per second, so a few hundred rows take a couple of seconds.
Every test ends by reading the simulator's effect ledger: each valid row's external id created
exactly once, each idempotency key applied once, and the journal agreeing with the server.
The helpers here are shared with tests/engine/test_faults.py and tests/engine/test_key_expiry.py;
the input files come from tests/harness.py.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, LimitSettings, Rate
from flexpay_batch.core.policies import RetryPolicy, Timeouts
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.report import write_outputs
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.run import run_job
from flexpay_batch.input import readers
from flexpay_batch.journal.store import Journal
from flexpay_batch.sim import Simulator
from tests.conftest import MakeSimulator
from tests.harness import fast_limits, succeeded, write_onboarding

pytestmark = pytest.mark.slow

#: Quick retries: the same decisions as the defaults, on a scale of tenths of a second.
FAST_RETRY = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=0.5, deadline=60.0)


def engine_settings(
    sim: Simulator,
    run_dir: Path,
    *,
    limits: LimitSettings,
    workers: int = 8,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy = FAST_RETRY,
) -> Settings:
    """Settings pointing the engine at ``sim`` with ``limits``."""
    return Settings(
        base_url=sim.base_url,
        ca_bundle=sim.ca_path,
        run_dir=run_dir,
        workers=workers,
        limits=limits,
        timeouts=timeouts or Timeouts(connect=2.0, read=5.0, total=10.0),
        retry=retry,
    )


def onboarding_request(source: Path, settings: Settings, **extra: Any) -> RunRequest:
    """A RunRequest for an onboarding job of ``source`` in ``settings.run_dir``."""
    return RunRequest(
        kind="onboarding",
        input_path=source,
        settings=settings,
        run_dir=settings.run_dir,
        **extra,
    )


async def run_onboarding(
    sim: Simulator,
    source: Path,
    run_dir: Path,
    *,
    limits: LimitSettings,
    token: str | None = None,
    **settings: Any,
) -> RunSummary:
    """One in-process invocation of the onboarding job against ``sim``."""
    request = onboarding_request(source, engine_settings(sim, run_dir, limits=limits, **settings))
    return await run_on(sim, request, token=token)


async def run_on(sim: Simulator, request: RunRequest, *, token: str | None = None) -> RunSummary:
    """One in-process invocation of ``request`` against ``sim`` (as its admin by default)."""
    return await run_job(
        request,
        base_url=sim.base_url,
        ca_bundle=sim.ca_path,
        token=token or sim.tokens["admin"],
    )


def assert_exactly_once(sim: Simulator, people: Sequence[dict[str, str]]) -> dict[str, Any]:
    """Every row's employee exists exactly once and no idempotency key applied twice."""
    effects = sim.effects()
    assert effects["employees"]["by_external_id"] == {p["external_id"]: 1 for p in people}
    assert set(effects["by_idempotency_key"].values()) <= {1}
    return effects


def assert_all_done(summary: RunSummary, rows: int) -> None:
    """The run ended by itself with every row done (created, replayed or already existing)."""
    assert summary.stopped is None, repr(summary.stopped)
    assert succeeded(summary.journal_counts) == rows, summary.journal_counts
    assert summary.exit_code == 0


def status_count(effects: dict[str, Any], status: int | str) -> int:
    """Requests the simulator answered with ``status``."""
    return int(effects["requests"]["by_status"].get(str(status), 0))


async def test_few_hundred_rows_at_the_servers_limits_get_no_429(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """300 rows, engine configured to exactly the simulator's limits: every row created once
    and the server never had to answer 429."""
    limits = fast_limits(writes_per_second=150.0, write_burst=20)
    sim = await make_simulator(limits=limits)
    people = write_onboarding(tmp_path / "people.csv", 300)
    summary = await run_onboarding(sim, tmp_path / "people.csv", tmp_path / "run", limits=limits)
    assert_all_done(summary, 300)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 429) == 0
    assert summary.throttled == 0
    assert summary.counts["created"] == 300


@pytest.mark.parametrize(
    ("advertised", "enforced", "rows", "workers", "least_429s"),
    [
        # Advertises 150/s but enforces 60/s (burst 5): the engine adapts.
        pytest.param((150.0, 20), (60.0, 5), 150, 8, 1, id="stricter"),
        # Promises 500/s burst 50, grants 40/s burst 2, to 16 workers: a storm of 429s at first.
        pytest.param((500.0, 50), (40.0, 2), 120, 16, 10, id="storm"),
    ],
)
async def test_server_stricter_than_advertised_finishes_every_row_once(
    make_simulator: MakeSimulator,
    tmp_path: Path,
    advertised: tuple[float, int],
    enforced: tuple[float, int],
    rows: int,
    workers: int,
    least_429s: int,
) -> None:
    """A server enforcing less than its headers advertise answers with 429s, yet the run is
    never stopped for them and every row is created exactly once."""
    promised = fast_limits(writes_per_second=advertised[0], write_burst=advertised[1])
    granted = fast_limits(writes_per_second=enforced[0], write_burst=enforced[1])
    sim = await make_simulator(
        limits=promised, enforced_limits=granted, fractional_retry_after=True
    )
    people = write_onboarding(tmp_path / "people.csv", rows)
    summary = await run_onboarding(
        sim, tmp_path / "people.csv", tmp_path / "run", limits=promised, workers=workers
    )
    assert_all_done(summary, rows)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 429) >= least_429s  # the server really was stricter


async def test_bare_nginx_429_server_still_finishes_every_row(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """No rate-limit headers, HTML 429s without Retry-After, a server at half the configured
    rate: AIMD brings the engine down to it and every row is created exactly once."""
    configured = fast_limits(writes_per_second=120.0, write_burst=20)
    server = fast_limits(writes_per_second=60.0, write_burst=5)
    sim = await make_simulator(limits=server, rate_limit_headers=False)
    people = write_onboarding(tmp_path / "people.csv", 150)
    summary = await run_onboarding(
        sim, tmp_path / "people.csv", tmp_path / "run", limits=configured
    )
    assert_all_done(summary, 150)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 429) > 0


async def test_a_grossly_misconfigured_limit_is_corrected_by_the_servers_headers(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Configured at 10x what the server grants, but the server's X-RateLimit-Limit and
    Remaining are believed at once: no 429 storm, every row created once."""
    server = fast_limits(writes_per_second=50.0, write_burst=5)
    configured = fast_limits(writes_per_second=500.0, write_burst=50)
    sim = await make_simulator(limits=server)
    people = write_onboarding(tmp_path / "people.csv", 100)
    summary = await run_onboarding(
        sim, tmp_path / "people.csv", tmp_path / "run", limits=configured, workers=16
    )
    assert_all_done(summary, 100)
    effects = assert_exactly_once(sim, people)
    assert status_count(effects, 429) <= 2


@pytest.mark.parametrize("reset_style", ["delta", "epoch", "absent"])
async def test_every_reset_header_style_finishes_exactly_once(
    make_simulator: MakeSimulator, tmp_path: Path, reset_style: str
) -> None:
    """X-RateLimit-Reset as a delta, as epoch seconds, or absent, with a server stricter than
    configured (so the headers matter): every row created once, no run stopped."""
    configured = fast_limits(writes_per_second=150.0, write_burst=20)
    enforced = fast_limits(writes_per_second=75.0, write_burst=10)
    sim = await make_simulator(
        limits=configured,
        enforced_limits=enforced,
        reset_style=reset_style,
        fractional_retry_after=True,
    )
    people = write_onboarding(tmp_path / "people.csv", 80, prefix=f"R{reset_style[0]}")
    summary = await run_onboarding(
        sim, tmp_path / "people.csv", tmp_path / "run", limits=configured
    )
    assert_all_done(summary, 80)
    assert_exactly_once(sim, people)


async def test_a_second_invocation_sends_nothing_new(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Re-running a finished job is a no-op: no new write reaches the server."""
    limits = fast_limits(writes_per_second=200.0, write_burst=20)
    sim = await make_simulator(limits=limits)
    people = write_onboarding(tmp_path / "people.csv", 40)
    first = await run_onboarding(sim, tmp_path / "people.csv", tmp_path / "run", limits=limits)
    assert_all_done(first, 40)
    writes_before = sim.effects()["requests"]["by_status"].get("201", 0)
    again = await run_onboarding(sim, tmp_path / "people.csv", tmp_path / "run", limits=limits)
    assert_all_done(again, 40)
    assert sim.effects()["requests"]["by_status"].get("201", 0) == writes_before
    assert_exactly_once(sim, people)


@pytest.mark.parametrize("kept", [True, False], ids=["references kept", "file read again"])
async def test_outputs_from_kept_references_are_those_from_the_file(
    make_simulator: MakeSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kept: bool,
) -> None:
    """results.csv and rejects.csv are the same bytes whether the run's count kept the
    input's references (the usual run) or the outputs read them again from the file (one
    larger than ``MAX_KEPT_REFERENCES``): blank rows, a quoted newline and rejected rows
    included."""
    if not kept:
        monkeypatch.setattr(readers, "MAX_KEPT_REFERENCES", 3)
    limits = fast_limits(writes_per_second=200.0, write_burst=20)
    sim = await make_simulator(limits=limits)
    source = tmp_path / "people.csv"
    write_onboarding(source, 12)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    first_name = lines[3].split(",")[1]
    # A quoted newline: the row spans two lines (its name is refused for the line break).
    lines[3] = lines[3].replace(first_name, f'"{first_name}\nJr"', 1)
    lines[5] = lines[5].replace("@", "", 1)  # an invalid email: rejected before sending
    lines.insert(7, ",,,\n")  # a blank row
    source.write_text("".join(lines), encoding="utf-8")
    summary = await run_onboarding(sim, source, tmp_path / "run", limits=limits)
    assert summary.totals.rejected_locally == 2
    again = tmp_path / "again"
    again.mkdir()
    with Journal.open(tmp_path / "run") as journal:
        write_outputs(again, journal, onboarding_request(source, Settings()), summary)
    for name in ("results.csv", "rejects.csv"):
        assert (tmp_path / "run" / name).read_bytes() == (again / name).read_bytes()
    results = (again / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(results) == 1 + 12
    assert sum("invalid_email" in line for line in results) == 1


async def test_employees_the_server_already_has_count_as_already_existed(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """A new job (new idempotency keys) over people the server already has: each 409
    employee_exists is recorded as already existed, never as a rejection or a duplicate."""
    limits = fast_limits(writes_per_second=200.0, write_burst=20)
    sim = await make_simulator(limits=limits)
    people = write_onboarding(tmp_path / "people.csv", 30)
    await run_onboarding(sim, tmp_path / "people.csv", tmp_path / "first", limits=limits)
    # A new job (another run dir, so new idempotency keys) over the same people and 10 more.
    more = write_onboarding(tmp_path / "more.csv", 40)
    summary = await run_onboarding(sim, tmp_path / "more.csv", tmp_path / "second", limits=limits)
    assert_all_done(summary, 40)
    assert summary.counts["already_existed"] == 30
    assert summary.counts["created"] == 10
    assert_exactly_once(sim, more)
    assert people == more[:30]


async def test_limiter_statistics_show_the_adaptation(make_simulator: MakeSimulator) -> None:
    """Against a stricter server the write limiter records throttles and decreases and ends
    below its configured rate (the read class is untouched)."""
    from flexpay_batch.api.client import FlexPayClient

    configured = fast_limits(writes_per_second=200.0, write_burst=20)
    sim = await make_simulator(
        limits=configured,
        enforced_limits=fast_limits(writes_per_second=50.0, write_burst=5),
        fractional_retry_after=True,
    )
    limiters = LimiterSet(configured)
    async with FlexPayClient(
        sim.base_url, sim.tokens["admin"], ca_bundle=sim.ca_path, limiters=limiters
    ) as client:
        outcomes: Counter[str] = Counter()
        for n in range(40):
            body = {"external_id": f"L{n}"}
            try:
                await client.request("POST", "employees", json_body=body, idempotency_key=f"k{n}")
            except (errors.ValidationFailed, errors.RateLimited) as exc:
                outcomes[type(exc).__name__] += 1  # the body is incomplete on purpose: 422
    assert outcomes["ValidationFailed"] > 0, outcomes  # requests did get through to the server
    write = limiters.for_class(EndpointClass.WRITE).statistics()
    read = limiters.for_class(EndpointClass.READ).statistics()
    assert write.throttled > 0
    assert write.decreases > 0
    assert write.current_rate < write.configured_rate
    assert read.throttled == 0
    assert read.current_rate == read.configured_rate


def test_fast_limits_are_the_contract_scaled_to_seconds() -> None:
    """The integration tests' limits are the contract's numbers per second (sanity check)."""
    limits = fast_limits()
    assert limits.write == ClassLimits(Rate(100.0, 1.0), 20)
    assert dataclasses.replace(limits.read, burst=50) == limits.read
