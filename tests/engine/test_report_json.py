"""``report.json`` and the ``--json`` summary say why a run stopped, with secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

from flexpay_batch.cli.summary import summary_json
from flexpay_batch.core.errors import ServiceUnhealthy
from flexpay_batch.core.redact import PLACEHOLDER
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.report import _report
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.journal.store import Journal
from tests.journal.helpers import make_job

TOKEN = "fp_live_9c1d7e3b5a"


def _report_of(tmp_path: Path, summary: RunSummary) -> dict[str, object]:
    run_dir = tmp_path / "run"
    request = RunRequest(
        kind="onboarding", input_path=tmp_path / "people.csv", settings=Settings(), run_dir=run_dir
    )
    with Journal.create(run_dir, make_job()) as journal:
        return _report(journal, request, summary)


def test_stop_reason_in_the_report_is_redacted(tmp_path: Path) -> None:
    """An exception text carrying an Authorization header reaches report.json redacted."""
    stopped = RuntimeError(f"reset by peer; headers: Authorization: Bearer {TOKEN}")
    summary = RunSummary(tmp_path / "run", stopped=stopped)
    report = _report_of(tmp_path, summary)
    assert TOKEN not in json.dumps(report)
    invocation = report["invocation"]
    assert isinstance(invocation, dict)
    assert invocation["stopped"]["error"] == "RuntimeError"
    assert PLACEHOLDER in invocation["stopped"]["message"]
    assert summary_json(summary)["stopped"] == invocation["stopped"]


def test_report_and_summary_agree_on_a_stop_and_on_none(tmp_path: Path) -> None:
    """Our own errors are shown by their message; a finished run has no stop reason."""
    stopped = ServiceUnhealthy("the API kept failing at https://127.0.0.1:9/v1/")
    summary = RunSummary(tmp_path / "run", stopped=stopped)
    expected = {"error": "ServiceUnhealthy", "message": stopped.message}
    assert _report_of(tmp_path, summary)["invocation"]["stopped"] == expected  # type: ignore[index]
    assert summary_json(summary)["stopped"] == expected
    assert RunSummary(tmp_path / "other").stopped_json() is None


def test_messages_in_the_report_are_redacted_like_the_summary(tmp_path: Path) -> None:
    """A run-level message carrying a bearer token reaches report.json redacted, as in --json."""
    summary = RunSummary(tmp_path / "run")
    summary.messages.append(f"server said: Authorization: Bearer {TOKEN}")
    report = _report_of(tmp_path, summary)
    assert TOKEN not in json.dumps(report)
    assert report["messages"] == summary_json(summary)["messages"]
