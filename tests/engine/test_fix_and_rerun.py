"""Fix and re-run: after fixing the rejected rows of an onboarding file, running it again
sends only the rows not yet done (matched by external id), without ``--restart``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MakeSimulatorThread
from tests.harness import cli_env, fast_limits, limit_flags, run_cli, write_onboarding

FLAGS = limit_flags(fast_limits(writes_per_second=1000.0, write_burst=100))

pytestmark = pytest.mark.slow


def test_the_fixed_file_sends_only_the_rows_not_yet_done(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """10 rows, row 6 bad: 9 created. Fixed and run again: 1 POST, no 409, 10 employees."""
    sim = make_simulator_thread()
    env = cli_env(sim)
    source = tmp_path / "people.csv"
    write_onboarding(source, 10)
    good = source.read_text(encoding="utf-8")
    lines = good.splitlines()
    lines[5] = lines[5].replace("@", " at ")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = tmp_path / "runs"
    first = run_cli(["onboard", str(source), "--run-dir", str(runs / "a"), *FLAGS], env=env)
    assert first.returncode == 1, first.stderr
    assert sim.effects()["employees"]["created"] == 9

    source.write_text(good, encoding="utf-8")  # the operator fixes row 6
    before = sim.effects()["requests"]["by_status"]
    second = run_cli(["onboard", str(source), "--run-dir", str(runs / "b"), *FLAGS], env=env)
    assert second.returncode == 0, second.stderr
    assert "9 rows took effect in an earlier run" in second.stderr
    effects = sim.effects()
    assert effects["employees"]["created"] == 10
    assert set(effects["employees"]["by_external_id"].values()) == {1}
    after = effects["requests"]["by_status"]
    assert after.get("409", 0) == before.get("409", 0), "rows already done were sent again"
    assert after.get("201", 0) - before.get("201", 0) == 1
    report = json.loads((runs / "b" / "report.json").read_text(encoding="utf-8"))
    assert report["rows"]["journal"]["already_existed"] == 9
    assert report["rows"]["journal"]["created"] == 1


def test_a_sandbox_job_is_never_built_on(tmp_path: Path) -> None:
    """The sandbox forgets its employees: a second sandbox run sends every row again."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 3)
    for name in ("a", "b"):
        result = run_cli(
            ["onboard", str(source), "--sandbox", "--run-dir", str(tmp_path / "runs" / name)],
            env={},
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "earlier run" not in result.stderr
    report = json.loads((tmp_path / "runs" / "b" / "report.json").read_text(encoding="utf-8"))
    assert report["rows"]["journal"]["created"] == 3
