"""Running the real command line as a subprocess against a simulator on a background thread.

    sim = make_simulator_thread(limits=fast_limits())
    result = run_cli(["onboard", str(csv_path), "--run-dir", str(run_dir)], env=cli_env(sim))
    assert result.returncode == 0, result.stderr

Tests that make a promise about the CLI (exit codes, messages, crash and resume) use these, so
the code under test is exactly what an operator runs: a separate process, real HTTPS, real
signals.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from flexpay_batch.limitspec import ClassLimits, LimitSettings, Rate
from flexpay_batch.sim import SimulatorThread

#: Environment variables a child keeps from ours (nothing else leaks into the CLI under test).
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


def fast_limits(
    writes_per_second: float = 100.0,
    write_burst: int = 20,
    reads_per_second: float = 300.0,
    read_burst: int = 50,
) -> LimitSettings:
    """The contract's limits scaled from per minute to per second, for runs of seconds."""
    return LimitSettings(
        read=ClassLimits(Rate(reads_per_second, 1.0), read_burst),
        write=ClassLimits(Rate(writes_per_second, 1.0), write_burst),
    )


def limit_flags(limits: LimitSettings) -> list[str]:
    """The CLI flags that configure the engine with ``limits``."""
    return [
        "--read-limit",
        str(limits.read.rate),
        "--read-burst",
        str(limits.read.burst),
        "--write-limit",
        str(limits.write.rate),
        "--write-burst",
        str(limits.write.burst),
    ]


def cli_env(
    sim: SimulatorThread, *, token: str = "admin", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A clean environment pointing the CLI at ``sim`` with one of its preset tokens."""
    env = {key: os.environ[key] for key in _KEEP if key in os.environ}
    env.update(
        {
            "FLEXPAY_BASE_URL": sim.base_url,
            "FLEXPAY_CA_BUNDLE": str(sim.ca_path),
            "FLEXPAY_TOKEN": sim.tokens.get(token, token),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    """The argv that runs ``flexpay-batch ARGS`` with this interpreter."""
    return [sys.executable, "-m", "flexpay_batch", *args]


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 120.0,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (bounded by ``timeout``) and capture its output."""
    return subprocess.run(
        cli_command(args),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


def start_cli(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start the CLI without waiting (for tests that signal or kill it)."""
    return subprocess.Popen(
        cli_command(args),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
