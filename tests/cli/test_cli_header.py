"""The header is checked before anything else: one whole-file error, exit 2, nothing sent.

A renamed column used to reject every row one by one (exit 1, a run directory, and for a
payroll an empty draft run on the server); ``validate`` printed the same message per row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flexpay_batch.core import errors
from flexpay_batch.jobs.header import check_header, missing_columns, required_columns
from flexpay_batch.jobs.registry import KINDS
from tests.conftest import MakeSimulatorThread
from tests.harness import CPU_BOUND_FLAGS, PERIOD_FLAGS, cli_env, run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def renamed(tmp_path: Path, old: str, new: str, sample: str = "onboarding.csv") -> Path:
    """A copy of a sample whose header column ``old`` is spelled ``new``."""
    text = (SAMPLES / sample).read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    path = tmp_path / f"renamed-{sample}"
    path.write_text(header.replace(old, new) + "\n" + rest, encoding="utf-8")
    return path


def test_required_columns_come_from_the_row_models() -> None:
    """Required columns are the model's required fields; payroll's reference is one of two."""
    assert required_columns(KINDS["payroll"]) == ("gross_amount", "currency")
    assert "external_id" in required_columns(KINDS["onboarding"])
    assert "tax_id" not in required_columns(KINDS["onboarding"])
    assert missing_columns(KINDS["payroll"], ["gross_amount", "currency"]) == [
        "employee_external_id or employee_id"
    ]
    assert missing_columns(KINDS["payroll"], ["employee_id", "gross_amount", "currency"]) == []


def test_a_misspelt_column_is_named_with_the_nearest_spelling(tmp_path: Path) -> None:
    """A typo'd header cell is suggested by difflib."""
    path = renamed(tmp_path, "compensation_amount", "compensaton_amnt")
    with pytest.raises(errors.InputFileError) as caught:
        check_header(KINDS["onboarding"], path, encoding=None)
    assert "compensation_amount" in caught.value.message
    assert str(path) in caught.value.message
    assert "'compensaton_amnt' meant to be 'compensation_amount'" in caught.value.hint


def test_jsonl_has_no_header_to_check() -> None:
    """JSONL rows name their own keys: the check leaves them to row validation."""
    check_header(KINDS["onboarding"], SAMPLES / "onboarding.jsonl", encoding=None)


@pytest.mark.slow
def test_renamed_column_stops_onboard_at_once_with_exit_2_and_no_run_dir(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """external_id renamed: exit 2 naming it, a suggestion, no run directory, no request."""
    sim = make_simulator_thread()
    path = renamed(tmp_path, "external_id", "employee_number")
    run_dir = tmp_path / "run"
    result = run_cli(
        ["onboard", str(path), "--run-dir", str(run_dir), *CPU_BOUND_FLAGS],
        env=cli_env(sim),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    errors_shown = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors_shown) == 1, result.stderr
    assert "external_id" in errors_shown[0]
    assert "'employee_number' meant to be 'external_id'" in result.stderr
    assert not run_dir.exists()
    assert sim.effects()["requests"]["total"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "sample", "other"),
    [
        (["onboard"], "payroll.csv", "payroll"),
        (["payroll", *PERIOD_FLAGS], "onboarding.csv", "onboard"),
    ],
    ids=["payroll-file-to-onboard", "onboarding-file-to-payroll"],
)
def test_a_file_of_the_other_kind_is_named_as_such(
    make_simulator_thread: MakeSimulatorThread,
    tmp_path: Path,
    command: list[str],
    sample: str,
    other: str,
) -> None:
    """The wrong command for a file: exit 2, the right command named, no draft run made."""
    sim = make_simulator_thread()
    run_dir = tmp_path / "run"
    args = [
        command[0],
        str(SAMPLES / sample),
        *command[1:],
        "--run-dir",
        str(run_dir),
        *CPU_BOUND_FLAGS,
    ]
    result = run_cli(args, env=cli_env(sim), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "looks like a" in result.stderr
    assert f"flexpay-batch {other}`" in result.stderr
    assert not run_dir.exists()
    assert sim.effects()["requests"]["total"] == 0


def test_validate_says_a_header_problem_once(tmp_path: Path) -> None:
    """validate: one message for a missing column (exit 2), not one per row."""
    path = renamed(tmp_path, "external_id", "employee_number")
    result = run_cli(["validate", str(path), "--kind", "onboarding"], env={}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("external_id") <= 2, result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr
