"""``run MANIFEST`` SIGKILLed at random, then run again: every effect of three organisations once.

Three organisations, each with an onboarding and a payroll job, against a simulator that
commits then drops about one write reply in ten. The real CLI is killed at seeded random
moments (some blind, early; most once a random number of effects has reached the server) and
the same command is run again until one invocation ends by itself. With
``FLEXPAY_KEY_SECRET`` set the state directory is also wiped after every kill: a host that takes
over with none of the dead one's journals must replay what was sent, not repeat it; and some
invocations are stopped the way operators and supervisors do (SIGTERM, SIGHUP then SIGTERM,
Ctrl-C three times), which must end in exit 130 (or the signal's own death before the jobs
start) and never a traceback.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.sim import FaultConfig
from tests.bureau.kit import (
    Org,
    created_per_prefix,
    jobs_env,
    onboard_job,
    payroll_job,
    sim_tokens,
    three_orgs,
    write_manifest,
)
from tests.cli.test_crash_resume import write_payroll
from tests.conftest import MakeSimulatorThread
from tests.harness import cli_env, fast_limits, start_cli, write_onboarding

pytestmark = pytest.mark.slow

SEED = 20261202
ROWS = 24
KILLS = 6
LIMITS = fast_limits(writes_per_second=120.0, write_burst=10)
FAULTS = FaultConfig(seed=SEED, commit_drop_rate=0.1)
INVOCATION_TIMEOUT = 60.0
MAX_INVOCATIONS = 60
#: How an invocation is stopped: SIGKILL, or the signals an operator or a supervisor sends
#: (a graceful stop, a second one that cancels requests in flight, a third: everything).
STOPS: tuple[tuple[signal.Signals, ...], ...] = (
    (signal.SIGKILL,),
    (signal.SIGKILL,),
    (signal.SIGTERM,),
    (signal.SIGHUP, signal.SIGTERM),
    (signal.SIGINT, signal.SIGINT, signal.SIGINT),
)
SECRET = "k" * 16 + "e" * 16 + "y" * 8


def _progress(effects: dict[str, Any]) -> int:
    """Effects so far: employees created, items added, runs created and submitted."""
    return (
        int(effects["employees"]["created"])
        + int(effects["payroll_items"]["added"])
        + int(effects["payroll_runs"]["created"])
        + sum(effects["runs_submitted"].values())
    )


def _setup(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path, extra: dict[str, str]
) -> tuple[Any, list[Org], Path, dict[str, str]]:
    orgs = three_orgs()
    sim = make_simulator_thread(tokens=sim_tokens(orgs), limits=LIMITS, faults=FAULTS)
    onboarding, payroll = [], []
    folder = tmp_path / "bureau files"  # a space in every path
    folder.mkdir()
    for org in orgs:
        people = folder / f"{org.name} people.csv"
        rows = write_onboarding(people, ROWS, prefix=org.prefix)
        pay = folder / f"{org.name} pay.csv"
        total = write_payroll(pay, [row["external_id"] for row in rows])
        onboarding.append(onboard_job(org, people))
        payroll.append(payroll_job(org, pay, expected_total=f"{total:.2f}", expected_count=ROWS))
    manifest = write_manifest(folder / "week 49.toml", onboarding + payroll)
    env = {"FLEXPAY_STATE_DIR": str(tmp_path / "state"), **jobs_env(orgs, LIMITS)}
    return sim, orgs, manifest, cli_env(sim, extra={**env, **extra})


@pytest.mark.parametrize("takeover", [False, True], ids=["same-host", "wiped-state-key-secret"])
def test_killed_at_random_then_run_again_applies_every_effect_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path, takeover: bool
) -> None:
    """SIGKILLed at random and run again (with the key secret: its state wiped each time, and
    stopped by SIGTERM, SIGHUP or up to three SIGINTs too): every employee created once,
    every item added once, each organisation's run created and submitted once, no
    idempotency key applied twice, never a traceback."""
    extra = {"FLEXPAY_KEY_SECRET": SECRET} if takeover else {}
    sim, orgs, manifest, env = _setup(make_simulator_thread, tmp_path, extra)
    total = 3 * (ROWS + ROWS + 2)
    rng = random.Random(f"{SEED}-{takeover}")
    kills = 0
    final: tuple[int, str, str] | None = None
    for _ in range(MAX_INVOCATIONS):
        before = _progress(sim.effects())
        proc = start_cli(["run", str(manifest), "--json"], env=env, cwd=tmp_path)
        if kills < KILLS:
            if rng.random() < 0.25:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(rng.uniform(0.0, 0.4))
            else:
                target = before + rng.randint(1, max(1, (total - before) // (KILLS - kills + 1)))
                deadline = time.monotonic() + INVOCATION_TIMEOUT
                while proc.poll() is None and time.monotonic() < deadline:
                    if _progress(sim.effects()) >= target:
                        break
                    time.sleep(0.003)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(rng.uniform(0.0, 0.03))
            if proc.poll() is None:
                stops = rng.choice(STOPS) if takeover else (signal.SIGKILL,)
                for number, stop in enumerate(stops):
                    if number:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(rng.uniform(0.0, 0.05))
                    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                        if proc.poll() is None:
                            proc.send_signal(stop)
                _, err = proc.communicate(timeout=INVOCATION_TIMEOUT)
                if proc.returncode == 0:
                    final = (0, "", err)
                    break
                # Before the jobs start no handler is installed: a stop is its default action.
                assert proc.returncode in (130, *(-stop for stop in stops)), (proc.returncode, err)
                assert "Traceback" not in err, err
                kills += 1
                if takeover:
                    shutil.rmtree(tmp_path / "state", ignore_errors=True)
                continue
        stdout, stderr = proc.communicate(timeout=INVOCATION_TIMEOUT)
        final = (proc.returncode, stdout, stderr)
        break
    assert final is not None, "no invocation finished"
    code, stdout, stderr = final
    assert code == 0, stderr
    assert kills >= KILLS

    effects = sim.effects()
    for org in orgs:
        assert set(created_per_prefix(effects, org.prefix).values()) == {1}, org.name
        assert len(created_per_prefix(effects, org.prefix)) == ROWS, org.name
    assert effects["payroll_runs"]["created"] == 3
    assert len(effects["runs_submitted"]) == 3
    assert set(effects["runs_submitted"].values()) == {1}
    items = effects["payroll_items"]["by_run_and_employee"]
    assert len(items) == 3 * ROWS
    assert set(items.values()) == {1}
    assert effects["payroll_item_changes"]["patched"] == 0
    assert set(effects["by_idempotency_key"].values()) == {1}
