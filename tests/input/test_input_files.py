"""Inputs that are not regular files are refused up front (issue 12): a run reads its input
more than once, so a FIFO, /dev/stdin or /dev/zero used to hang it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flexpay_batch.core.errors import InputFileError
from flexpay_batch.input.readers import iter_records
from tests.harness import run_cli


def _env() -> dict[str, str]:
    return {key: os.environ[key] for key in ("PATH", "PYTHONPATH", "HOME") if key in os.environ}


@pytest.mark.parametrize("command", ["onboard", "validate"])
def test_a_fifo_input_is_refused_not_waited_on(command: str, tmp_path: Path) -> None:
    """A FIFO named rows.csv (no writer): exit 2 with a sentence saying what to do."""
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    args = [command, str(fifo)] + (
        ["--sandbox", "--run-dir", str(tmp_path / "r")] if command == "onboard" else []
    )
    result = run_cli(args, env=_env(), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "is not a regular file" in result.stderr
    assert "Save the rows to a .csv or .jsonl file" in result.stderr


def test_dev_zero_is_refused() -> None:
    """/dev/zero is a device: refused before a byte is read, whatever the format says."""
    with pytest.raises(InputFileError, match="not a regular file"):
        list(iter_records("/dev/zero", format="csv"))


def test_stdin_error_suggests_no_flag_that_does_not_exist() -> None:
    """The error for a name without .csv/.jsonl does not suggest a non-existent --format."""
    with pytest.raises(InputFileError) as caught:
        list(iter_records("/dev/stdin"))
    assert "--format" not in f"{caught.value} {caught.value.hint}"
