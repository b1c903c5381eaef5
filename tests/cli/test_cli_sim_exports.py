"""``flexpay-batch sim`` prints an ``export`` line that, pasted into a shell, makes the other
commands talk to it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.harness import cli_command, project_pythonpath, run_cli, write_onboarding

pytestmark = pytest.mark.slow


def test_the_export_line_pasted_into_a_shell_points_onboard_at_the_simulator(
    tmp_path: Path,
) -> None:
    """eval the printed line in bash, then onboard with that environment: exit 0."""
    env = {**os.environ, "PYTHONPATH": project_pythonpath()}
    command = cli_command(["sim", "--port", "0", "--no-limits"])
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as sim:
        try:
            assert sim.stdout is not None
            export = ""
            for line in sim.stdout:  # bounded: the banner is a dozen lines
                if line.startswith("export "):
                    export = line.strip()
                    break
            assert export, "no export line printed"
            shell = subprocess.run(
                ["bash", "-c", f"{export}\nenv -0"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
                env={"PATH": os.environ["PATH"]},
            )
            exported = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
            names = {"FLEXPAY_BASE_URL", "FLEXPAY_CA_BUNDLE", "FLEXPAY_TOKEN"}
            assert names <= set(exported)
            source = tmp_path / "people.csv"
            write_onboarding(source, 3)
            cli_env = {k: exported[k] for k in names} | {"PATH": os.environ["PATH"]}
            result = run_cli(
                ["onboard", str(source), "--run-dir", str(tmp_path / "run")],
                env=cli_env,
                cwd=tmp_path,
            )
            assert result.returncode == 0, result.stderr
        finally:
            sim.send_signal(signal.SIGINT)
            sim.wait(timeout=30)
