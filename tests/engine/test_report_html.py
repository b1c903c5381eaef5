"""``report.html``: counts, rate against the limit, 429s and retries, the rejects table, and
no personal data from the input file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flexpay_batch.engine.htmlreport import rate_series
from tests.harness import run_cli, write_onboarding

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_rate_series_spreads_rows_over_equal_slices() -> None:
    """Eleven rows over ten seconds: ten one-second slices holding every row once."""
    series = rate_series([1000.0 + i for i in range(11)])
    assert len(series) == 10
    assert sum(series) == pytest.approx(11.0)  # rows per second x 1 s slices = rows
    assert rate_series([]) == []


@pytest.mark.slow
def test_report_html_has_counts_and_rejects_and_no_personal_data(tmp_path: Path) -> None:
    """A sandbox onboarding with one bad row: the page is 0600, counts and the rejected row
    (by number) are in it, and no value of any input row is."""
    source = tmp_path / "people.csv"
    rows = write_onboarding(source, 20)
    text = source.read_text(encoding="utf-8").splitlines()
    text[5] = text[5].replace("@", " at ")  # row 6: an invalid email
    source.write_text("\n".join(text) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    result = run_cli(
        ["onboard", str(source), "--sandbox", "--run-dir", str(run_dir), "--write-limit", "100/s"],
        env={},
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    page_path = run_dir / "report.html"
    assert stat.S_IMODE(page_path.stat().st_mode) == 0o600
    page = page_path.read_text(encoding="utf-8")
    assert "<th>created</th><td>19</td>" in page
    assert "<td>6</td><td>rejected</td><td>email</td>" in page
    assert "<svg" in page
    assert "429 responses" in page
    for row in rows:
        for column, value in row.items():
            if len(value) >= 5 and column not in {"hire_date", "currency", "pay_group_id"}:
                assert value not in page, f"{column} of an input row is in report.html"
