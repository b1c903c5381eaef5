"""The real ``flexpay-batch`` command line, end to end, against the simulator over HTTPS.

Every test runs the CLI as a subprocess (``tests.harness``), the way an operator does, with the
contract's limits scaled to seconds, and checks what the operator sees: exit codes (0 all done,
1 some rows rejected or failed, 2 usage or configuration, 3 aborted, 130 interrupted), one
clear message, the output files and their permissions, and what the simulator says was done.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.sim import SimulatorThread
from tests.conftest import MakeSimulatorThread
from tests.harness import (
    CPU_BOUND_FLAGS,
    CPU_BOUND_LIMITS,
    PERIOD_FLAGS,
    STATE_DIR,
    api_get,
    cli_env,
    cli_running,
    fast_limits,
    limit_flags,
    read_csv,
    run_cli,
    succeeded,
    write_onboarding,
)

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FORMULA_CELLS = Path(__file__).resolve().parents[1] / "data" / "formula_cells.csv"
# samples/README.md: the six rows that are wrong on purpose, as (row, field, code).
SAMPLE_REJECTS = [
    (38, "hire_date", "invalid_date"),
    (95, "compensation_amount", "too_many_decimals"),
    (152, "external_id", "duplicate"),
    (241, "pay_group_id", "unknown_pay_group"),
    (317, "last_name", "missing"),
    (426, "email", "invalid_email"),
]
PAYROLL_TOTAL = Decimal("237314.51")
PAYROLL_ITEMS = 143


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def error_lines(stderr: str) -> list[str]:
    """The ``error:`` lines the CLI printed."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def onboard_sample(sim: SimulatorThread, run_dir: Path, cwd: Path) -> Any:
    """Run the sample onboarding against ``sim`` into ``run_dir``."""
    args = ["onboard", str(SAMPLES / "onboarding.csv"), "--run-dir", str(run_dir), *CPU_BOUND_FLAGS]
    return run_cli(args, env=cli_env(sim), cwd=cwd)


def status_json(run_dir: Path, cwd: Path) -> tuple[int, dict[str, Any]]:
    """``flexpay-batch status --json RUN_DIR``: its exit code and report."""
    result = run_cli(["status", "--json", str(run_dir)], env=cli_env_offline(), cwd=cwd)
    assert result.returncode in {0, 1}, result.stderr
    return result.returncode, json.loads(result.stdout)


def cli_env_offline() -> dict[str, str]:
    """An environment with no token and an API nobody listens on (for offline commands)."""
    # PYTHONPATH: the CLI must import the package under test, not an installed copy.
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["FLEXPAY_BASE_URL"] = "https://127.0.0.1:9/v1/"
    env["FLEXPAY_STATE_DIR"] = str(STATE_DIR)
    return env


# ── onboarding ─────────────────────────────────────────────────────────────────────────────


def test_sample_onboarding_creates_494_rejects_6_with_private_outputs_and_never_twice(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """The sample file: 494 created, the README's 6 rows rejected (exit 1), files 0600 in 0700."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    run_dir = tmp_path / "first"
    result = onboard_sample(sim, run_dir, tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "500 rows" in result.stderr
    effects = sim.effects()
    assert effects["employees"]["created"] == 494
    assert set(effects["employees"]["by_external_id"].values()) == {1}

    rejects = read_csv(run_dir / "rejects.csv")
    assert [(int(r["row"]), r["field"], r["code"]) for r in rejects] == SAMPLE_REJECTS
    assert all(r["reason"] for r in rejects)
    results = read_csv(run_dir / "results.csv")
    assert [int(r["row"]) for r in results] == list(range(2, 502))
    created = [r for r in results if r["status"] == "created"]
    assert len(created) == 494
    assert all(r["employee_id"].startswith("emp_") for r in created)
    assert {int(r["row"]) for r in results if r["status"] == "rejected"} == {
        row for row, _, _ in SAMPLE_REJECTS
    }
    report = json.loads((run_dir / "report.json").read_text())
    assert report["rows"]["journal"] == {
        "pending": 0,
        "in_flight": 0,
        "created": 494,
        "replayed": 0,
        "already_existed": 0,
        "rejected": 6,
        "failed": 0,
    }
    assert report["invocation"]["exit_code"] == 1

    assert mode(run_dir) == 0o700
    for name in ("results.csv", "rejects.csv", "report.json", "journal.sqlite"):
        assert mode(run_dir / name) == 0o600, name

    # Run it again against the same organisation: every employee already exists, none twice.
    again = onboard_sample(sim, tmp_path / "second", tmp_path)
    assert again.returncode == 1, again.stderr
    assert sim.effects()["employees"]["created"] == 494
    second = read_csv(tmp_path / "second" / "results.csv")
    assert [r["status"] for r in second if r["status"] != "rejected"] == ["already_existed"] * 494
    first_ids = {r["external_id"]: r["employee_id"] for r in created}
    assert {r["external_id"]: r["employee_id"] for r in second if r["employee_id"]} == first_ids


def test_formula_like_cells_are_escaped_in_results(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A cell that a spreadsheet would evaluate (``=E4``) is written as text (``'=E4``)."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    run_dir = tmp_path / "run"
    args = ["onboard", str(FORMULA_CELLS), "--run-dir", str(run_dir), *CPU_BOUND_FLAGS]
    result = run_cli(args, env=cli_env(sim), cwd=tmp_path)

    assert result.returncode == 1, result.stderr  # =1+2 as money is refused
    references = [r["external_id"] for r in read_csv(run_dir / "results.csv")]
    assert "'=E4" in references
    assert "=E4" in sim.effects()["employees"]["by_external_id"]  # the API got the real id
    for path in (run_dir / "results.csv", run_dir / "rejects.csv"):
        for line in read_csv(path):
            for cell in line.values():
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)


def test_read_only_token_aborts_with_exit_3_and_one_clear_message(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A token without write scope stops the run at the first write: exit 3, no traceback."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    token = sim.tokens["read-only"]
    run_dir = tmp_path / "run"
    args = ["onboard", str(SAMPLES / "onboarding.csv"), "--run-dir", str(run_dir), *CPU_BOUND_FLAGS]
    result = run_cli(args, env=cli_env(sim, token="read-only"), cwd=tmp_path)

    assert result.returncode == 3, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "write:employees" in result.stderr
    assert "Traceback" not in result.stderr
    assert token not in result.stdout + result.stderr
    assert sim.effects()["employees"]["created"] == 0
    for path in run_dir.iterdir():
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("env_change", "expected"),
    [
        ({"FLEXPAY_TOKEN": None}, "FLEXPAY_TOKEN"),
        ({"FLEXPAY_BASE_URL": "http://127.0.0.1:9/v1/"}, "https"),
    ],
    ids=["missing-token", "http-base-url"],
)
def test_configuration_errors_exit_2_before_any_request(
    make_simulator_thread: MakeSimulatorThread,
    tmp_path: Path,
    env_change: dict[str, str | None],
    expected: str,
) -> None:
    """No token, or a plain-http base URL: exit 2, one message, nothing sent or journaled."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    env = cli_env(sim)
    for key, value in env_change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    args = [
        "onboard",
        str(SAMPLES / "onboarding.csv"),
        "--run-dir",
        str(tmp_path / "r"),
        *CPU_BOUND_FLAGS,
    ]
    result = run_cli(args, env=env, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert sim.effects()["requests"]["total"] == 0
    assert not (tmp_path / "r").exists(), "no run directory for a command that cannot run"


def test_resume_after_the_input_changed_is_refused_and_restart_begins_a_new_job(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """An edited input: resume exits 2 naming the change; --restart runs a new job (exit 0)."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    env = cli_env(sim)
    source = tmp_path / "people.csv"
    write_onboarding(source, 30, prefix="ED")
    run_dir = tmp_path / "run"
    args = ["onboard", str(source), "--run-dir", str(run_dir), *CPU_BOUND_FLAGS]
    first = run_cli(args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    job_id = json.loads((run_dir / "report.json").read_text())["job"]["job_id"]

    write_onboarding(source, 35, prefix="ED")  # five more people: another file
    for attempt in (args, ["resume", str(run_dir)]):
        refused = run_cli(attempt, env=env, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert "input file changed" in refused.stderr
        assert "--restart" in refused.stderr
        assert len(error_lines(refused.stderr)) == 1, refused.stderr
    assert sim.effects()["employees"]["created"] == 30

    restarted = run_cli([*args, "--restart"], env=env, cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["job"]["job_id"] != job_id
    assert list(run_dir.glob("previous-*/journal.sqlite")), "the old job's journal is kept"
    statuses = [r["status"] for r in read_csv(run_dir / "results.csv")]
    assert statuses == ["already_existed"] * 30 + ["created"] * 5
    effects = sim.effects()["employees"]
    assert effects["created"] == 35
    assert set(effects["by_external_id"].values()) == {1}


def test_status_reads_a_running_job_then_sigterm_stops_it_resumably(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """``status`` from a second process shows a live run; SIGTERM exits 130; resume ends it."""
    slow = fast_limits(writes_per_second=25.0, write_burst=1)
    sim = make_simulator_thread(limits=slow)
    env = cli_env(sim)
    source = tmp_path / "people.csv"
    write_onboarding(source, 120, prefix="ST")
    run_dir = tmp_path / "run"
    args = ["onboard", str(source), "--run-dir", str(run_dir), *limit_flags(slow)]
    with cli_running(args, env=env) as proc:
        deadline = time.monotonic() + 30.0  # a safety bound only
        report: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "journal.sqlite").exists():
                code, report = status_json(run_dir, tmp_path)
                if succeeded(report["counts"]) > 0:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before status could watch it"
        assert code == 1  # rows left
        assert report["state"] == "running"
        assert report["rows_in_input"] == 120
        assert 0 < succeeded(report["counts"]) < 120
        assert report["left"] == 120 - succeeded(report["counts"]) - report["counts"]["rejected"]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "resume" in stderr
    assert str(run_dir) in stderr  # the hint names the directory to resume
    # Said when the signal arrived, before the in-flight requests finished and the summary.
    assert "stopping…" in stderr
    assert stderr.index("stopping…") < stderr.index("finished in")
    code, report = status_json(run_dir, tmp_path)
    assert code == 1
    assert report["state"] == "stopped"
    assert report["eta_seconds"] is None
    assert report["counts"]["in_flight"] == 0
    assert report["left"] > 0

    resumed = run_cli(["resume", str(run_dir)], env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    table = run_cli(["status", str(run_dir)], env=cli_env_offline(), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "finished" in table.stdout
    assert "created" in table.stdout
    assert "120" in table.stdout
    assert set(sim.effects()["employees"]["by_external_id"].values()) == {1}
    assert sim.effects()["employees"]["created"] == 120


# ── validate ───────────────────────────────────────────────────────────────────────────────


def test_validate_needs_no_token_and_names_file_row_and_field(tmp_path: Path) -> None:
    """``validate`` works offline without a token: exit 1 naming file, row and field of each."""
    rejects = tmp_path / "rejects.csv"
    result = run_cli(
        ["validate", str(SAMPLES / "onboarding.csv"), "--rejects", str(rejects)],
        env=cli_env_offline(),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    offline = [r for r in SAMPLE_REJECTS if r[2] != "unknown_pay_group"]  # needs the server
    for row, field, _ in offline:
        line = next(x for x in result.stderr.splitlines() if f"row {row}" in x)
        assert "onboarding.csv" in line
        assert field in line
    assert "500 rows, 495 valid, 5 rejected" in result.stdout
    assert [(int(r["row"]), r["field"], r["code"]) for r in read_csv(rejects)] == offline
    assert mode(rejects) == 0o600


def test_validate_accepts_the_sample_payroll_and_prints_its_total(tmp_path: Path) -> None:
    """A clean payroll file validates with exit 0 and the total the README states."""
    result = run_cli(
        ["validate", str(SAMPLES / "payroll.csv")], env=cli_env_offline(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"{PAYROLL_ITEMS} rows, {PAYROLL_ITEMS} valid, 0 rejected" in result.stdout
    assert str(PAYROLL_TOTAL) in result.stdout


def test_validate_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not there: exit 2 and a message naming it."""
    result = run_cli(["validate", str(tmp_path / "nope.csv")], env=cli_env_offline())
    assert result.returncode == 2, result.stderr
    assert "nope.csv" in result.stderr
    assert "Traceback" not in result.stderr


# ── payroll ────────────────────────────────────────────────────────────────────────────────


def test_payroll_with_wrong_control_total_stays_draft_then_submits_once_and_exports(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A wrong --expected-total leaves the run in draft (exit 1); the right one submits it once."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    env = cli_env(sim)
    assert onboard_sample(sim, tmp_path / "onboard", tmp_path).returncode == 1
    run_dir = tmp_path / "payroll"
    base = [
        "payroll",
        str(SAMPLES / "payroll.csv"),
        *PERIOD_FLAGS,
        "--run-dir",
        str(run_dir),
        *CPU_BOUND_FLAGS,
    ]

    wrong = run_cli([*base, "--expected-total", "237314.50"], env=env, cwd=tmp_path)
    assert wrong.returncode == 1, wrong.stderr
    assert "draft" in wrong.stderr
    assert "237314.50" in wrong.stderr
    assert "237314.51" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    run_id = json.loads((run_dir / "report.json").read_text())["meta"]["payroll_run_id"]
    effects = sim.effects()
    assert effects["runs_submitted"] == {}
    assert effects["payroll_items"]["added"] == PAYROLL_ITEMS
    run = api_get(sim, f"payroll_runs/{run_id}")
    assert run["status"] == "draft"
    assert run["item_count"] == PAYROLL_ITEMS
    assert Decimal(run["total"]) == PAYROLL_TOTAL

    # The operator corrects the control total and runs the same command again.
    right = run_cli([*base, "--expected-total", str(PAYROLL_TOTAL)], env=env, cwd=tmp_path)
    assert right.returncode == 0, right.stderr
    assert f"{run_id} submitted" in right.stderr
    effects = sim.effects()
    assert effects["payroll_runs"]["created"] == 1
    assert effects["runs_submitted"] == {run_id: 1}
    assert effects["payroll_items"]["added"] == PAYROLL_ITEMS
    assert set(effects["payroll_items"]["by_run_and_employee"].values()) == {1}
    results = read_csv(run_dir / "results.csv")
    assert len(results) == PAYROLL_ITEMS
    assert all(r["item_id"].startswith("item_") for r in results)

    out = tmp_path / "stubs.csv"
    exported = run_cli(["paystubs", run_id, "--out", str(out)], env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert mode(out) == 0o600
    stubs = read_csv(out)
    assert len(stubs) == PAYROLL_ITEMS
    assert {s["payroll_run_id"] for s in stubs} == {run_id}
    assert sum(Decimal(s["gross_amount"]) for s in stubs) == PAYROLL_TOTAL
    # Who first, in the operator's own ids; then when and how much; the server's ids last.
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:3] == ["employee_external_id", "employee_id", "pay_date"]
    assert all(s["employee_external_id"].startswith("E") for s in stubs)
    before = out.read_bytes()
    again = run_cli(["paystubs", run_id, "--out", str(out)], env=env, cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert "--force" in again.stderr
    assert out.read_bytes() == before
    forced = run_cli(["paystubs", run_id, "--out", str(out), "--force"], env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr


def test_payroll_submits_at_once_when_every_figure_matches(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """With matching control figures the run is submitted in one invocation (exit 0)."""
    sim = make_simulator_thread(limits=CPU_BOUND_LIMITS)
    assert onboard_sample(sim, tmp_path / "onboard", tmp_path).returncode == 1
    args = [
        "payroll",
        str(SAMPLES / "payroll.csv"),
        *PERIOD_FLAGS,
        "--expected-total",
        str(PAYROLL_TOTAL),
        "--expected-count",
        str(PAYROLL_ITEMS),
        "--run-dir",
        str(tmp_path / "payroll"),
        *CPU_BOUND_FLAGS,
    ]
    result = run_cli(args, env=cli_env(sim), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_id,) = sim.effects()["runs_submitted"]
    assert sim.effects()["runs_submitted"] == {run_id: 1}
    results = read_csv(tmp_path / "payroll" / "results.csv")
    assert {r["status"] for r in results} == {"created"}
    assert f"{run_id} submitted" in result.stderr
