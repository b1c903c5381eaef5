"""Server-imposed pauses are bounded (issue 12): by ``max_server_pause``, by the row deadline,
and shown to the operator as "paused by the server until HH:MM:SS"."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
from aiohttp import web

from flexpay_batch.cli.progress import PlainReporter
from flexpay_batch.cli.progress_base import pause_clock
from flexpay_batch.core import errors
from flexpay_batch.core.policies import RetryPolicy
from flexpay_batch.core.settings import Settings, load_settings
from flexpay_batch.engine.progress import RunStart
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.run import run_job
from tests.fake_api import NO_LIMITS, TOKEN
from tests.harness import write_onboarding
from tests.stub_server import StubServer


def _hostile_429(seconds: float) -> errors.RateLimited:
    return errors.RateLimited("slow down", status=429, retry_after=seconds)


def test_a_429_whose_pause_ends_past_the_deadline_stops_the_row() -> None:
    """A 429 asking for a pause that (capped) would end past the row deadline is not retried."""
    policy = RetryPolicy(deadline=300.0, max_retry_after=60.0)
    late = policy.decide(_hostile_429(999_999_999), tries=0, elapsed=250.0, rng=lambda: 1.0)
    assert (late.retry, late.reason) == (False, "deadline")
    early = policy.decide(_hostile_429(999_999_999), tries=0, elapsed=10.0, rng=lambda: 1.0)
    assert early.retry


def test_max_server_pause_is_a_setting_defaulting_to_60_seconds() -> None:
    """FLEXPAY_MAX_SERVER_PAUSE (or the TOML key) sets the cap; the default is 60 s."""
    assert load_settings(flags={}, env={}).retry.max_retry_after == 60.0
    env = {"FLEXPAY_MAX_SERVER_PAUSE": "5"}
    assert load_settings(flags={}, env=env).retry.max_retry_after == 5.0


def test_progress_says_until_when_the_server_paused_us() -> None:
    """While paused, the progress line names the end of the pause instead of an ETA."""
    stream = io.StringIO()
    now = [0.0]
    reporter = PlainReporter(stream, interval=0.0, clock=lambda: now[0])
    reporter.start(RunStart(total_rows=10, estimate_seconds=1.0, limit_per_second=1.0))
    reporter.paused(1_800_000_000.0)
    line = stream.getvalue().splitlines()[-1]
    assert f"paused by the server until {pause_clock(1_800_000_000.0)}" in line
    assert "eta" not in line
    reporter.paused(None)
    assert "eta" in stream.getvalue().splitlines()[-1]


async def test_one_hostile_retry_after_does_not_stall_the_run(tmp_path: Path) -> None:
    """A single 429 with Retry-After: 999999999 pauses writes for max_server_pause only."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    refused = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith("pay_groups"):
            return web.json_response({"data": [{"id": "pg_weekly"}]})
        if request.method == "GET" and request.path.endswith("employment_types"):
            return web.json_response({"data": [{"id": "full_time"}, {"id": "part_time"}]})
        if not refused:
            refused.append(1)
            return web.json_response({}, status=429, headers={"Retry-After": "999999999"})
        body = await request.json()
        return web.json_response({"employee_id": f"emp_{body['external_id']}"}, status=201)

    async with StubServer(handler, tmp_path) as stub:
        settings = Settings(
            base_url=stub.base_url,
            ca_bundle=stub.ca,
            run_dir=tmp_path / "run",
            workers=1,
            limits=NO_LIMITS,
            retry=RetryPolicy(base_delay=0.01, max_delay=0.1, max_retry_after=0.2),
        )
        request = RunRequest(
            kind="onboarding", input_path=source, settings=settings, run_dir=settings.run_dir
        )
        # Bounded: the old code paused every write for 300 s here.
        with anyio.fail_after(30):
            summary = await run_job(request, base_url=stub.base_url, ca_bundle=stub.ca, token=TOKEN)
    assert summary.exit_code == 0, summary.journal_counts
