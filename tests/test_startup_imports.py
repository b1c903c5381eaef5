"""Start-up stays cheap: commands that need no network load neither aiohttp nor the simulator.

A structural test, not a timing one (the figure is ``python -m benchmarks.startup``): each
command runs in a fresh interpreter and reports ``sys.modules``. ``--help``, ``validate``,
``status`` and ``runs`` must not pay for aiohttp (client or server), cryptography or trustme,
and of the simulator only the command's own definition (``sim.cli``) may be loaded, so that
``sim`` can be listed by ``--help``. ``--help`` must not load typer's rich renderer either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "onboarding.csv"

#: Top-level packages no light command may import.
HEAVY = ("aiohttp", "aiolimiter", "cryptography", "trustme", "yarl", "multidict")
#: The simulator modules that mount ``sim`` on the CLI; any other one is the simulator itself.
SIM_MOUNT = frozenset({"flexpay_batch.sim", "flexpay_batch.sim.cli"})

PROBE = """
import json, sys
from flexpay_batch.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.write("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def _probe(script: str, label: str, args: list[str], tmp_path: Path) -> Any:
    """Run ``script`` with ``args`` in a fresh interpreter; the JSON it wrote after ``label``."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    marker = done.stdout.rfind(f"\n{label} ")
    assert marker >= 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout[marker + len(f"\n{label} ") :])


def _modules_after(args: list[str], tmp_path: Path) -> set[str]:
    return set(_probe(PROBE, "MODULES", args, tmp_path))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["validate", str(SAMPLE)], id="validate"),
        pytest.param(["status", "no-such-run-dir"], id="status"),
        pytest.param(["runs", "--root", "no-such-dir"], id="runs"),
    ],
)
def test_light_commands_skip_network_stack(args: list[str], tmp_path: Path) -> None:
    modules = _modules_after(args, tmp_path)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"{args[0]} imported {heavy[:8]}"
    sim = sorted(m for m in modules if m.startswith("flexpay_batch.sim") and m not in SIM_MOUNT)
    assert not sim, f"{args[0]} imported the simulator: {sim[:8]}"
    if "typer._click" in modules:
        # typer runs on its vendored click: click itself would be a second copy for nothing.
        assert "click" not in modules, f"{args[0]} imported click beside typer's own"


def test_status_skips_validation_models(tmp_path: Path) -> None:
    """``status`` reads the journal only: not the row models (whose pydantic classes cost more to
    build than the rest of the command) nor the job registry. pydantic itself may be loaded:
    typer uses it to convert parameters."""
    modules = _modules_after(["status", "no-such-run-dir"], tmp_path)
    assert "flexpay_batch.input.models" not in modules
    assert "flexpay_batch.jobs.registry" not in modules


def test_status_skips_the_progress_bar(tmp_path: Path) -> None:
    """``status`` prints a table, never a live bar: rich's progress module (and its live
    display) load only with the bar's reporter (issue 16)."""
    modules = _modules_after(["status", "no-such-run-dir"], tmp_path)
    assert "rich.progress" not in modules
    assert "rich.live" not in modules


PYDANTIC_BUILT = """
import json, sys
from flexpay_batch.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
from flexpay_batch.input.models import OnboardingRow, PayrollRow
built = {m.__name__: bool(m.__pydantic_complete__) for m in (OnboardingRow, PayrollRow)}
sys.stdout.write("\\nBUILT " + json.dumps(built))
"""


def test_validate_builds_only_the_model_it_uses(tmp_path: Path) -> None:
    """Row models build their pydantic validators on first use (``defer_build``): validating
    an onboarding file never pays for the payroll model (issue 16)."""
    built = _probe(PYDANTIC_BUILT, "BUILT", ["validate", str(SAMPLE)], tmp_path)
    assert built == {"OnboardingRow": True, "PayrollRow": False}
