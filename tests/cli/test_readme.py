"""The README's examples and tables stay true: its sandbox commands are run, its exit-code
table is checked against the error classes, its flags against the real ``--help``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from flexpay_batch.core import errors
from tests.harness import run_cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _command_after(marker: str) -> list[str]:
    """The ``flexpay-batch`` arguments of the README example that contains ``marker``."""
    inline = re.sub(r"\s*\n\s*", " ", README)
    for match in re.finditer(r"flexpay-batch ((?:onboard|payroll) [^`#&]*)", inline):
        if marker in match.group(1):
            # Run from a scratch directory (the run directory is made there), same samples.
            return [
                arg.replace("samples/", f"{ROOT}/samples/", 1)
                if arg.startswith("samples/")
                else arg
                for arg in shlex.split(match.group(1))
            ]
    raise AssertionError(f"no README example with {marker!r}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("marker", "exit_code", "said", "in_readme"),
    [
        # Command 1 of the quick start: exit 1, created 494, rejected 6, rejects.csv written.
        (
            "samples/onboarding.csv --sandbox",
            1,
            ("created 494", "rejected 6"),
            "created 494, … rejected 6",
        ),
        # The payroll example in "What it does": 143 items, total 237314.51, submitted.
        ("--sandbox-employees", 0, ("submitted",), "(143 items, total 237314.51, submitted)"),
    ],
    ids=["quick-start-onboarding", "sandbox-payroll"],
)
def test_the_readme_examples_end_as_the_readme_says(
    tmp_path: Path, marker: str, exit_code: int, said: tuple[str, ...], in_readme: str
) -> None:
    """Each sandbox example of the README, run as written, exits and reports as it says."""
    result = run_cli(_command_after(marker), env={}, cwd=tmp_path)
    assert result.returncode == exit_code, result.stderr
    assert all(words in result.stderr for words in said), result.stderr
    assert in_readme in README


def test_the_exit_code_table_lists_every_code_the_cli_uses() -> None:
    """Every error class's exit code, 70 and 130 are rows of the README's table."""
    table = README.split("## Exit codes", 1)[1].split("##", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    used = {0, 1, 70, 130}
    stack: list[type[errors.FlexPayBatchError]] = [errors.FlexPayBatchError]
    while stack:
        cls = stack.pop()
        used.add(cls.exit_code)
        stack.extend(cls.__subclasses__())
    assert used <= listed, used - listed
    assert "`status` has its own" in table


@pytest.mark.parametrize(
    "command", ["onboard", "payroll", "resume", "status", "runs", "validate", "paystubs", "bench"]
)
def test_every_flag_the_readme_names_exists(command: str) -> None:
    """A ``--flag`` the README shows next to a command is in that command's help."""
    help_text = run_cli([command, "-h"], env={"COLUMNS": "200"}).stdout
    lines = [line for line in README.splitlines() if re.search(rf"flexpay-batch {command}\b", line)]
    for line in lines:
        for flag in re.findall(r"--[a-z][a-z-]+", line):
            assert flag in help_text, f"README: `{command} {flag}` is not a flag"
    assert "--key-ttl" not in README
