"""Running the real command line as a subprocess against a simulator on a background thread.

    sim = make_simulator_thread(limits=fast_limits())
    result = run_cli(["onboard", str(csv_path), "--run-dir", str(run_dir)], env=cli_env(sim))
    assert result.returncode == 0, result.stderr

Tests that make a promise about the CLI (exit codes, messages, crash and resume) use these, so
the code under test is exactly what an operator runs: a separate process, real HTTPS, real
signals.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate
from flexpay_batch.core.states import SUCCEEDED
from flexpay_batch.input.columns import ONBOARDING_COLUMNS
from flexpay_batch.sim import FaultConfig, SimulatorThread
from tests.forkcli import ForkedProcess, Zygote

#: Environment variables a child keeps from ours (nothing else leaks into the CLI under test).
# PYTHONPATH: the CLI subprocess must import the package under test (a worktree), not
# whatever copy is installed in the environment.
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV", "PYTHONPATH")
#: The CLI's state directory (default run directories) for every child of this test process:
#: a test must never write to the real per-user state directory.
STATE_DIR = Path(tempfile.mkdtemp(prefix="fpb-state-"))


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


#: Limits the simulator enforces too, high enough that a CLI run is bound by CPU, not by
#: waiting: for tests that are not about the rate (test_limits.py and the engine tests are).
CPU_BOUND_LIMITS = fast_limits(writes_per_second=1000.0, write_burst=100)
CPU_BOUND_FLAGS = tuple(limit_flags(CPU_BOUND_LIMITS))
#: The pay period every CLI payroll test uses (the samples' week).
PERIOD_FLAGS = (
    "--pay-group",
    "pg_weekly",
    "--period-start",
    "2026-03-02",
    "--period-end",
    "2026-03-08",
    "--pay-date",
    "2026-03-13",
)


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
            "FLEXPAY_STATE_DIR": str(STATE_DIR),
        }
    )
    env.update(extra or {})
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    """The argv that runs ``flexpay-batch ARGS`` with this interpreter (a fresh exec)."""
    return [sys.executable, "-m", "flexpay_batch", *args]


def project_pythonpath() -> str:
    """``PYTHONPATH`` for a fresh child that must import the code under test, not the venv's."""
    return str(Path(__file__).resolve().parent.parent)


_zygote: Zygote | None = None


def zygote() -> Zygote:
    """This test process's CLI zygote, started on first use (closed by a conftest fixture)."""
    global _zygote
    if _zygote is None:
        _zygote = Zygote.start()
    return _zygote


def close_zygote() -> None:
    """Stop this process's zygote if one was started."""
    global _zygote
    if _zygote is not None:
        _zygote.close()
        _zygote = None


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 120.0,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (bounded by ``timeout``) and capture its output."""
    proc = start_cli(args, env=env, cwd=cwd, stdin=stdin)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cli_command(args), proc.wait(), stdout, stderr)


def start_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: str | None = None,
) -> ForkedProcess:
    """Start the CLI without waiting (for tests that signal or kill it).

    The process is forked from a zygote that has already imported the CLI (``forkcli``): a
    real process with exactly ``env`` and ``cwd``, minus a second of imports per start.
    """
    # Whatever else a test passes, its children never touch the real per-user state directory.
    env = {"FLEXPAY_STATE_DIR": str(STATE_DIR), **env}
    return zygote().spawn(args, env=env, cwd=cwd, stdin=stdin)


@contextlib.contextmanager
def cli_running(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
) -> Iterator[ForkedProcess]:
    """``start_cli`` for a ``with`` block: the CLI never outlives the block (a failed assertion,
    a timeout); still running at its end, it is killed and reaped."""
    proc = start_cli(args, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_for_cli_progress(
    sim: SimulatorThread, proc: ForkedProcess, count: int, *, within: float = 60.0
) -> None:
    """Return once ``sim`` has created ``count`` employees; fail if ``proc`` ends first or
    ``within`` seconds pass (a safety bound, not a speed assertion)."""
    deadline = time.monotonic() + within
    while sim.effects()["employees"]["created"] < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


# Names of five bytes or more: the journal's bytes are searched for them, and a short needle
# such as "Eve" turns up by chance in 200 kB of random secrets and hashes.
FIRST = ("Annika", "Björn", "Chloé", "Dmitri", "Evelyn", "Farida", "Giulia", "Hiroshi", "Ingrid")
LAST = ("Müller", "O'Brien", "Nakamura", "Okafor", "Silva", "Novak", "Haddad", "Kowalski")


def write_onboarding(path: Path, count: int, *, prefix: str = "CR") -> list[dict[str, str]]:
    """Write ``count`` valid onboarding rows with unique ids to ``path``; return the rows.

    Each row depends only on ``prefix`` and its index, so two files with the same prefix agree
    on the rows they share.
    """
    rows: list[dict[str, str]] = []
    for n in range(count):
        rng = random.Random(f"{prefix}-{n}")
        first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
        hourly = n % 3 == 0
        rows.append(
            {
                "external_id": f"{prefix}{n + 1:05d}",
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}.{prefix.lower()}{n}@example.com".replace("'", ""),
                "hire_date": f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                "pay_group_id": "pg_weekly",
                "employment_type": "part_time" if hourly else "full_time",
                "compensation_type": "hourly" if hourly else "salary",
                "compensation_amount": f"{rng.randint(1800, 4500) / 100:.2f}"
                if hourly
                else f"{rng.randint(40, 140) * 500}.00",
                "currency": "USD",
                "tax_id": f"9{rng.randint(10, 99)}00{rng.randint(1000, 9999)}",
                "bank_routing_number": "036282766",
                "bank_account_number": f"0{rng.randint(10**8, 10**9 - 1)}",
            }
        )
    write_csv(path, rows)
    return rows


def write_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write onboarding ``rows`` as CSV with the flat onboarding columns."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ONBOARDING_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def api_get(sim: SimulatorThread, path: str, params: dict[str, str] | None = None) -> Any:
    """One authenticated GET against the simulator (admin token), decoded; faults off first."""
    sim.set_faults(FaultConfig())
    url = sim.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(  # noqa: S310  # https to the local simulator only
        url, headers={"Authorization": f"Bearer {sim.tokens['admin']}"}
    )
    context: ssl.SSLContext = sim.client_ssl_context()
    with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
        return json.load(response)


def list_all(sim: SimulatorThread, path: str, params: dict[str, str] | None = None) -> list[Any]:
    """Every item of a paginated list of the simulator."""
    items: list[Any] = []
    query = {"limit": "100", **(params or {})}
    while True:
        page = api_get(sim, path, query)
        items.extend(page["data"])
        if not page.get("next_cursor"):
            return items
        query["cursor"] = page["next_cursor"]


def succeeded(counts: Mapping[str, int]) -> int:
    """Rows that took effect (created, replayed or already existed) in counts keyed by status."""
    return sum(counts.get(status.value, 0) for status in SUCCEEDED)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


T = TypeVar("T")


def peak_allocation(work: Callable[[], T]) -> tuple[T, int]:
    """``work()``'s result and the peak of Python allocations (bytes) while it ran."""
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
