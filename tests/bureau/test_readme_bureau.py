"""The README's "Running a bureau" stays true: its flags exist, and the sample manifest, made
absolute the way the README says, runs as the README says it ends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.bureau.kit import Org, sim_tokens, token_env
from tests.conftest import MakeSimulatorThread
from tests.harness import CPU_BOUND_LIMITS, cli_env, run_cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Running a bureau", 1)[1].split("\n## ", 1)[0]
PLACEHOLDER = "/path/to/flexpay-batch"


def test_every_flag_the_section_names_exists() -> None:
    """A --flag on a `flexpay-batch run` line of the README is in `run --help`."""
    help_text = run_cli(["run", "-h"], env={"COLUMNS": "200"}).stdout
    lines = [line for line in README.splitlines() if "flexpay-batch run " in line]
    assert lines
    for line in lines:
        for flag in re.findall(r"--[a-z][a-z-]+", line):
            assert flag in help_text, f"README: `run {flag}` is not a flag"
    assert f's|{PLACEHOLDER}|$PWD|" samples/bureau.toml' in SECTION


@pytest.mark.slow
def test_the_sample_manifest_ends_as_the_readme_says(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """samples/bureau.toml against three organisations: exit 1 (6 rejects each for acme and
    chi), beta's 50 done, acme's payroll of 143 items submitted; nothing again on a re-run."""
    orgs = [Org(name, f"fps_{name}_demo", f"org_{name}", "") for name in ("acme", "beta", "chi")]
    sim = make_simulator_thread(tokens=sim_tokens(orgs), limits=CPU_BOUND_LIMITS)
    sample = (ROOT / "samples" / "bureau.toml").read_text(encoding="utf-8")
    manifest = tmp_path / "bureau.toml"
    manifest.write_text(sample.replace(PLACEHOLDER, str(ROOT)), encoding="utf-8")
    extra = {
        "FLEXPAY_STATE_DIR": str(tmp_path / "state"),
        "FLEXPAY_WRITE_LIMIT": str(CPU_BOUND_LIMITS.write.rate),
        "FLEXPAY_WRITE_BURST": str(CPU_BOUND_LIMITS.write.burst),
        **token_env(orgs),
    }
    env = cli_env(sim, extra=extra)
    result = run_cli(["run", str(manifest), "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    counts = [(j["org"], j["kind"], j["counts"]["created"], j["counts"]["rejected"]) for j in jobs]
    assert counts == [
        ("acme", "onboard", 494, 6),
        ("beta", "onboard", 50, 0),
        ("chi", "onboard", 494, 6),
        ("acme", "payroll", 143, 0),
    ]
    assert "(143 items, total 237314.51, submitted)" in SECTION
    assert "143 items, total 237314.51" in result.stderr
    effects = sim.effects()
    assert list(effects["runs_submitted_by_period"].values()) == [1]

    again = run_cli(["run", str(manifest)], env=env, cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert sim.effects()["by_idempotency_key"] == effects["by_idempotency_key"]
