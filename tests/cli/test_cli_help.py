"""Help and flags: -h, --version, grouped options, no ``--no-no-x`` flags, the token named,
and ``--json``'s one summary on stdout."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from flexpay_batch import __version__
from tests.harness import run_cli, write_onboarding

COMMANDS = ["onboard", "payroll", "resume", "status", "runs", "validate", "paystubs", "bench"]
WIDE = {"COLUMNS": "200", "TERM": "dumb"}


@functools.cache
def help_of(command: str) -> str:
    """``flexpay-batch COMMAND -h`` at a wide terminal, run once per test process."""
    result = run_cli([command, "-h"], env=WIDE)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_version_and_short_help() -> None:
    """--version prints the version; -h is --help."""
    version = run_cli(["--version"], env={})
    assert version.returncode == 0
    assert version.stdout.strip() == f"flexpay-batch {__version__}"
    short = run_cli(["-h"], env=WIDE)
    assert short.returncode == 0
    assert "Exit codes" in short.stdout
    assert "70 internal error" in short.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_no_double_negative_flags_and_no_str_metavars(command: str) -> None:
    """No --no-no-x or --no-<default-off flag>; no option shown as taking a bare <str>."""
    text = help_of(command)
    assert "--no-no-" not in text
    negatives = set(re.findall(r"--no-[a-z-]+", text))
    assert negatives <= {"--no-submit"}, negatives
    # Every option taking a value names what it wants (URL, YYYY-MM-DD, N/UNIT, ...).
    untyped = [line for line in text.splitlines() if "--" in line and "<str>" in line]
    assert not untyped, untyped


@pytest.mark.parametrize("command", ["onboard", "payroll", "resume"])
def test_run_commands_say_where_the_token_comes_from(command: str) -> None:
    """The token: FLEXPAY_TOKEN or --token-file, named in the help; options grouped."""
    text = help_of(command)
    assert "FLEXPAY_TOKEN" in text
    assert "--token-file" in text
    assert "Rate limits and workers" in text
    assert "--workers" in text
    assert "--write-limit" in text


def test_payroll_help_shows_date_and_url_placeholders() -> None:
    """Dates read YYYY-MM-DD, the base URL reads URL."""
    text = help_of("payroll")
    assert "YYYY-MM-DD" in text
    assert re.search(r"--base-url\s+URL", text)
    assert "--submit" in text


@pytest.mark.parametrize(
    ("args", "default"),
    [
        (["onboard", "-h"], "default STATE_DIR/runs/KIND-FILE-HASH"),
        (["payroll", "--help"], "default STATE_DIR/runs/KIND-FILE-HASH"),
        (["runs", "-h"], "default: STATE_DIR/runs and STATE_DIR/bureau/ORG"),
    ],
)
def test_the_state_directory_survives_the_help_rendering(args: list[str], default: str) -> None:
    """The default run directory reads STATE_DIR/runs/..., not "/runs/..." (the markdown
    rendering drops anything in angle brackets), and says what STATE_DIR is."""
    text = " ".join(run_cli(args, env=WIDE).stdout.replace("│", " ").split())
    assert default in text
    assert "STATE_DIR is FLEXPAY_STATE_DIR if set, else ~/.local/state/flexpay-batch" in text
    assert " /runs" not in text


@pytest.mark.slow
def test_json_prints_one_summary_on_stdout(tmp_path: Path) -> None:
    """onboard --sandbox --json: stdout is one JSON object with the counts; progress on stderr."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 5)
    result = run_cli(
        ["onboard", str(source), "--sandbox", "--json", "--run-dir", str(tmp_path / "run")],
        env={},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    summary = json.loads(lines[0])
    assert summary["counts"]["created"] == 5
    assert summary["exit_code"] == 0
    assert summary["run_dir"] == str(tmp_path / "run")
    assert "SANDBOX" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dry_run", [False, True])
def test_json_logs_stream_has_the_sandbox_banner_as_json(tmp_path: Path, dry_run: bool) -> None:
    """onboard --sandbox --json-logs --json (and --dry-run): every stderr line is a JSON
    object, the sandbox banner a warning message among them; stdout one JSON summary."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 3)
    args = ["onboard", str(source), "--sandbox", "--json-logs", "--json"]
    args += ["--run-dir", str(tmp_path / "r"), *(["--dry-run"] if dry_run else [])]
    result = run_cli(args, env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    banners = [r for r in records if r["event"] == "message" and "SANDBOX:" in r["message"]]
    assert [banner["level"] for banner in banners] == ["warning"]
    [summary] = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["exit_code"] == 0
    if dry_run:
        assert summary["would_send"] == {"POST /employees": 3}
        assert not (tmp_path / "r").exists()
    else:
        assert summary["counts"]["created"] == 3


def test_bench_writes_to_a_real_url_need_yes(tmp_path: Path) -> None:
    """bench --kind write against a non-sandbox URL with nobody to ask: exit 2, nothing sent."""
    result = run_cli(
        ["bench", "--kind", "write", "--base-url", "https://127.0.0.1:9/v1/"],
        env={"FLEXPAY_TOKEN": "fp_test_token_123"},
        cwd=tmp_path,
        stdin="",
    )
    assert result.returncode == 2, result.stderr
    assert "draft payroll runs" in result.stderr
    assert "--yes" in result.stderr


@pytest.mark.parametrize("columns", ["50", "80", "200"])
def test_help_keeps_panels_and_never_splits_a_hyphenated_word(columns: str) -> None:
    """Plain help (no rich renderer): the options stand under their panels, in the order the
    command declares them, and at any width no line ends inside a hyphenated word such as
    ``~/.local/state/flexpay-batch`` or ``--token-file``."""
    text = run_cli(["onboard", "-h"], env={"COLUMNS": columns, "TERM": "dumb"}).stdout
    headings = [line for line in text.splitlines() if line and not line.startswith(" ")]
    panels = [h for h in headings if h.endswith(":") and not h.startswith("Usage")]
    assert panels == [
        "Arguments:",
        "Connection (token: FLEXPAY_TOKEN or --token-file):",
        "Run directory and input:",
        "Rate limits and workers:",
        "Output:",
        "Options:",
    ]
    assert "~/.local/state/flexpay-batch" in text
    assert not [line for line in text.splitlines() if line.rstrip().endswith("-")]
    assert "╭" not in text  # not rich's boxes
