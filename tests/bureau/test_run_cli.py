"""``flexpay-batch run MANIFEST`` as an operator runs it: a separate process, real HTTPS to the
simulator serving three organisations, real signals. A bad job stops everything before a
request is sent (exit 2); SIGTERM mid-run exits 130 and a re-run finishes every row once."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from flexpay_batch.cli.app import main
from flexpay_batch.cli.bureau import _say_what_next
from flexpay_batch.sim import SimulatorThread
from tests.bureau.kit import (
    Org,
    created_per_prefix,
    jobs_env,
    onboard_job,
    onboard_jobs,
    sim_tokens,
    three_orgs,
    token_env,
    write_manifest,
)
from tests.conftest import MakeSimulatorThread, close_this_threads_loop
from tests.harness import cli_env, fast_limits, run_cli, start_cli, write_onboarding

pytestmark = pytest.mark.slow

#: Slow enough that a SIGTERM lands while every organisation still has rows to send.
LIMITS = fast_limits(writes_per_second=20.0, write_burst=5)
ROWS = 40


def _setup(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> tuple[SimulatorThread, list[Org], Path, dict[str, str]]:
    orgs = three_orgs()
    sim = make_simulator_thread(tokens=sim_tokens(orgs), limits=LIMITS)
    manifest = write_manifest(tmp_path / "bureau.toml", onboard_jobs(tmp_path, orgs, ROWS))
    extra = {"FLEXPAY_STATE_DIR": str(tmp_path / "state"), **jobs_env(orgs, LIMITS)}
    return sim, orgs, manifest, cli_env(sim, extra=extra)


def test_a_wrong_token_variable_stops_everything_before_sending(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """beta's token variable unset: exit 2 naming job 2 and token_env; no request reached the
    server and no run directory was made, not even for acme and chi."""
    sim, orgs, manifest, env = _setup(make_simulator_thread, tmp_path)
    del env[orgs[1].token_env]
    result = run_cli(["run", str(manifest)], env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "job 2 (beta, onboard): token_env: the variable FLEXPAY_TOKEN_BETA" in result.stderr
    assert sim.effects()["requests"]["total"] == 0
    assert not (tmp_path / "state").exists()
    for org in orgs:
        assert org.token not in result.stderr + result.stdout


def test_sigterm_mid_run_then_run_again_finishes_every_row_once(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """SIGTERM once rows are being created: exit 130, outputs written for each job; the same
    command again exits 0 with every employee of every organisation created exactly once, and
    --json lists the three jobs done, as `runs` does, each with its organisation."""
    sim, orgs, manifest, env = _setup(make_simulator_thread, tmp_path)
    proc = start_cli(["run", str(manifest)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while sim.effects()["employees"]["created"] < 15 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, stderr
    assert "stopped by SIGTERM" in stderr
    created_before = sim.effects()["employees"]["created"]
    assert created_before < 3 * ROWS, "the signal came too late to test anything"
    run_dirs = sorted((tmp_path / "state" / "bureau").glob("*/*"))
    assert len(run_dirs) == 3
    assert all((run_dir / "report.json").is_file() for run_dir in run_dirs)

    again = run_cli(["run", str(manifest), "--json"], env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["exit_code"] == 0
    assert [(job["org"], job["state"]) for job in summary["jobs"]] == [
        ("acme", "done"),
        ("beta", "done"),
        ("chi", "done"),
    ]
    assert all(job["counts"]["rejected"] == 0 for job in summary["jobs"])
    effects = sim.effects()
    for org in orgs:
        created = created_per_prefix(effects, org.prefix)
        assert list(created.values()) == [1] * ROWS, org.name
    assert set(effects["by_idempotency_key"].values()) == {1}
    listed = json.loads(run_cli(["runs", "--json"], env=env, cwd=tmp_path).stdout)
    assert sorted((run["org"], run["state"]) for run in listed) == [
        ("acme", "finished"),
        ("beta", "finished"),
        ("chi", "finished"),
    ]


@pytest.mark.parametrize(
    ("seam", "signum"),
    [
        ("flexpay_batch.bureau.local.prepare_jobs", signal.SIGINT),
        ("flexpay_batch.bureau.job.state_root", signal.SIGINT),
        ("flexpay_batch.bureau.local.prepare_jobs", signal.SIGTERM),
    ],
)
def test_ctrl_c_or_sigterm_before_the_jobs_start_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seam: str,
    signum: signal.Signals,
) -> None:
    """A Ctrl-C or SIGTERM while the manifest's jobs are checked (hashing large files takes a
    while): exit 130 with one sentence saying nothing was sent, not typer's silent exit 130
    nor a silent death by SIGTERM, and a second signal ignored."""

    def interrupted(*_: object, **__: object) -> None:
        os.kill(os.getpid(), signum)  # delivered to this (the main) thread at once
        time.sleep(30)  # never reached the end of: the handler raises first

    monkeypatch.setattr(seam, interrupted)
    close_this_threads_loop()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["run", str(tmp_path / "bureau.toml")])
        # A second signal while the message is shown would have been a traceback or a death.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    assert exited.value.code == 130
    assert capsys.readouterr().err.startswith(
        "error: interrupted while checking the manifest's jobs; nothing was sent or written"
    )


def test_debug_shows_a_failed_jobs_traceback_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in one job says 're-run with --debug for details': with --debug its traceback is
    shown, the token redacted from it and from the --json summary."""
    (org,) = three_orgs()[:1]
    people = tmp_path / "people.csv"
    write_onboarding(people, 2, prefix=org.prefix)
    manifest = write_manifest(tmp_path / "bureau.toml", [onboard_job(org, people)])
    for name, value in {
        org.token_env: org.token,
        "FLEXPAY_BASE_URL": "https://127.0.0.1:9/v1/",
        "FLEXPAY_STATE_DIR": str(tmp_path / "state"),
    }.items():
        monkeypatch.setenv(name, value)

    async def bug(*_: object, **__: object) -> None:
        raise RuntimeError(f"a bug holding the token {org.token}")

    monkeypatch.setattr("flexpay_batch.bureau.local.run_bureau_job", bug)
    close_this_threads_loop()
    with pytest.raises(SystemExit) as exited:
        main(["run", str(manifest), "--json", "--debug"])
    out, err = capsys.readouterr()
    assert exited.value.code == 70
    assert json.loads(out)["jobs"][0]["error"].startswith("internal error (RuntimeError)")
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: a bug holding the token" in err
    assert org.token not in out + err


def test_ctrl_c_while_the_command_line_is_built_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """typer builds the command from the annotations first (tens of milliseconds): a Ctrl-C
    then is exit 130 and one sentence, not a KeyboardInterrupt traceback."""

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("typer.main.get_command", interrupted)
    with pytest.raises(SystemExit) as exited:
        main(["run", "bureau.toml"])
    assert exited.value.code == 130
    assert capsys.readouterr().err.startswith("error: interrupted\n")


@pytest.mark.parametrize("code", [130, 4])
def test_what_next_quotes_a_manifest_path_with_spaces(
    capsys: pytest.CaptureFixture[str], code: int
) -> None:
    """The command to run again is pasted into a shell: a path with a space is quoted."""
    _say_what_next(code, Path("/srv/bureau files/week 49.toml"))
    assert "`flexpay-batch run '/srv/bureau files/week 49.toml'`" in capsys.readouterr().err


def test_a_rotated_token_goes_on_with_allow_token_change(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """acme's token rotated after its job ran: the journal refuses the new one (exit 2) with
    advice `run` can follow (no `--restart`, which it has not); with --allow-token-change the
    job goes on and nothing is created twice."""
    orgs = three_orgs()[:1]
    rotated = Org("acme", orgs[0].token + "_rotated", orgs[0].org_id, orgs[0].prefix)
    sim = make_simulator_thread(tokens=sim_tokens([*orgs, rotated]), limits=LIMITS)
    people = tmp_path / "people.csv"
    write_onboarding(people, 5, prefix=rotated.prefix)
    manifest = write_manifest(tmp_path / "bureau.toml", [onboard_job(rotated, people)])
    extra = {"FLEXPAY_STATE_DIR": str(tmp_path / "state"), **jobs_env(orgs, LIMITS)}
    env = cli_env(sim, extra=extra)
    assert run_cli(["run", str(manifest)], env=env, cwd=tmp_path).returncode == 0

    env.update(token_env([rotated]))
    refused = run_cli(["run", str(manifest)], env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "run the manifest again with --allow-token-change" in refused.stderr
    assert "--restart" not in refused.stderr
    again = run_cli(["run", str(manifest), "--allow-token-change"], env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert list(created_per_prefix(sim.effects(), rotated.prefix).values()) == [1] * 5
