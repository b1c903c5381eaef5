"""Smoke test of the benchmark suite: every figure runs at a tiny size and yields numbers.

No wall-clock assertions: the benchmarks measure speed, this only keeps them from rotting.
The whole file takes well under 30 seconds (one simulator child process per figure, a few
dozen to a few thousand rows each).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from benchmarks.__main__ import FIGURES, run_suite
from benchmarks.common import SMOKE

pytestmark = pytest.mark.slow

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_runs_and_reports_numbers(name: str, tmp_path: Path) -> None:
    """Each figure produces checks holding finite numbers, its PNGs and a report section."""
    (figure,) = run_suite(SMOKE, [name], tmp_path, echo=False)

    assert figure.key == name
    assert figure.rows
    assert figure.checks
    for check in figure.checks:
        numbers = [float(x) for x in NUMBER.findall(check.value)]
        assert numbers, check
        assert all(math.isfinite(x) for x in numbers), check
    for plot in figure.plots:
        assert (tmp_path / plot).stat().st_size > 0
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"## {figure.title}" in report
