"""The standalone command (``python -m flexpay_batch.sim``) and the throughput benchmark, small."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import typer
from typer.testing import CliRunner

from benchmarks.sim_throughput import run
from flexpay_batch.sim.cli import sim

pytestmark = pytest.mark.slow


def test_module_entry_point_serves_and_prints_its_details() -> None:
    """``--json`` prints base URL, CA path, tokens and admin secret; the URL then answers."""
    command = [sys.executable, "-m", "flexpay_batch.sim", "--port", "0", "--json", "--no-limits"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())
            context = ssl.create_default_context(cafile=info["ca_path"])
            request = urllib.request.Request(  # noqa: S310  # https URL printed by the simulator
                info["base_url"] + "pay_groups",
                headers={"Authorization": f"Bearer {info['tokens']['read-only']}"},
            )
            with urllib.request.urlopen(request, context=context, timeout=10) as resp:  # noqa: S310
                assert resp.status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    assert set(info["tokens"]) == {"read-only", "payroll-submitter", "admin"}
    assert info["admin_secret"]


@pytest.mark.parametrize(
    "args",
    [
        ["--write-limit", "10/fortnight"],
        ["--read-burst", "0"],
        ["--reset-style", "sometimes"],
        ["--error-500-rate", "2"],
        ["--enforced-write-limit", "nope"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    """Invalid rates, bursts, styles and fault rates exit with status 2 before serving."""
    app = typer.Typer()
    app.command()(sim)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2


def test_benchmark_runs_small() -> None:
    """``run(n)`` measures a small load end to end and every request succeeds."""
    # In a worker thread: asyncio.run() there leaves the main thread's loop state alone, which
    # the looptime plugin would otherwise replace with a loop nobody closes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(run, 300, 8).result(timeout=60)
    assert result["requests"] == 300
    assert sum(result["by_status"].values()) == 300
    assert set(result["by_status"]) <= {200, 201}
    assert result["requests_per_second"] > 0
