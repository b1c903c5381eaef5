"""The engine reports through the ``Reporter`` its caller gives ``run_job``, and shows nothing
itself: a job queue can drive ``run_job`` with its own reporter, or none."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import Reporter, RunStart, SilentReporter
from flexpay_batch.engine.run import run_job
from tests.conftest import MakeSimulator
from tests.engine.test_engine_integration import engine_settings, onboarding_request
from tests.harness import fast_limits, write_onboarding

pytestmark = pytest.mark.slow


class RecordingReporter(SilentReporter):
    """A ``Reporter`` that keeps every event asserted on (retries, rates and pauses are not)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.rows: Counter[RowStatus] = Counter()
        self.total_rows: int | None = None
        self.summary: dict[str, int] = {}

    def start(self, run: RunStart) -> None:
        self.events.append("start")
        self.total_rows = run.total_rows

    def row_done(self, status: RowStatus) -> None:
        self.rows[status] += 1

    def message(self, text: str, level: int = logging.INFO) -> None:
        self.events.append("message")

    def finish(self, summary: Mapping[str, int]) -> None:
        self.events.append("finish")
        self.summary = dict(summary)

    def close(self) -> None:
        self.events.append("close")


async def test_run_job_reports_to_the_callers_reporter_and_prints_nothing(
    make_simulator: MakeSimulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Start, one event per row, finish and close reach the given reporter; stdout and stderr
    stay empty (the engine has no display of its own)."""
    limits = fast_limits()
    sim = await make_simulator(limits=limits)
    write_onboarding(tmp_path / "people.csv", 5)
    request = onboarding_request(
        tmp_path / "people.csv", engine_settings(sim, tmp_path / "run", limits=limits)
    )
    reporter = RecordingReporter()
    recorded: Reporter = reporter
    summary = await run_job(
        request,
        base_url=sim.base_url,
        ca_bundle=sim.ca_path,
        token=sim.tokens["admin"],
        reporter=recorded,
    )
    assert summary.exit_code == 0
    assert reporter.events[0] == "start"
    assert reporter.events[-2:] == ["finish", "close"]
    assert reporter.total_rows == 5
    assert reporter.rows == Counter({RowStatus.CREATED: 5})
    assert reporter.summary == {"created": 5}
    assert capfd.readouterr() == ("", "")


async def test_run_job_without_a_reporter_is_silent(
    make_simulator: MakeSimulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No reporter given: the run completes and writes nothing to stdout or stderr."""
    limits = fast_limits()
    sim = await make_simulator(limits=limits)
    write_onboarding(tmp_path / "people.csv", 3)
    request = onboarding_request(
        tmp_path / "people.csv", engine_settings(sim, tmp_path / "run", limits=limits)
    )
    summary = await run_job(
        request, base_url=sim.base_url, ca_bundle=sim.ca_path, token=sim.tokens["admin"]
    )
    assert summary.exit_code == 0
    assert capfd.readouterr() == ("", "")
