"""SIGTERM and SIGHUP stop a run like Ctrl-C at every stage (issue 12): the real CLI in its own
process, a stub server that holds the pre-flight read open until the signal has arrived."""

from __future__ import annotations

import os
import signal
import ssl
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from flexpay_batch.core import errors
from flexpay_batch.engine.pipeline import StopControl
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.engine.run import _signals_deferred
from tests.conftest import MakeSimulatorThread
from tests.engine.helpers import NeverFinishing, beside
from tests.fake_api import TOKEN
from tests.forkcli import ForkedProcess
from tests.harness import (
    CPU_BOUND_FLAGS,
    PERIOD_FLAGS,
    cli_env,
    run_cli,
    start_cli,
    write_onboarding,
)
from tests.jobs.test_payroll_reconcile import (
    onboard,
    pay,
    the_regular_run,
    write_pay,
)
from tests.stub_server import StubServer

#: Headers the proxy below must not copy (they describe one hop's framing, not the message).
_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding"})


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
async def test_signal_during_pre_flight_is_an_orderly_interrupt(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    """A SIGTERM/SIGHUP while pre-flight waits on the server: message, outputs, exit 130."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 3)
    reached = anyio.Event()
    release = anyio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        reached.set()
        await release.wait()
        return web.json_response({"data": []})

    run_dir = tmp_path / "run"
    async with StubServer(handler, tmp_path) as stub:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "FLEXPAY_BASE_URL": stub.base_url,
            "FLEXPAY_CA_BUNDLE": str(stub.ca),
            "FLEXPAY_TOKEN": TOKEN,
        }
        proc = start_cli(["onboard", str(source), "--run-dir", str(run_dir)], env=env)
        code, stderr = await _signal_when_reached(proc, reached, release, stop_signal)
    assert code == 130, stderr
    assert f"stopped by {stop_signal.name}" in stderr
    assert (run_dir / "report.json").is_file()


async def test_stop_with_nothing_on_the_wire_cancels_waiting_workers_at_once() -> None:
    """Workers waiting (as at a paused limiter) are cancelled as soon as a stop is requested
    and nothing is on the wire, not after the grace period (here: never)."""
    stop = StopControl()
    at_the_limiter = NeverFinishing()

    async def nothing_on_the_wire() -> None:
        return None

    async def stop_soon() -> None:
        await at_the_limiter.started.wait()
        stop.request(errors.RunInterrupted("stopped by SIGINT"))

    # fail_after is a hang guard, not a speed claim: grace is infinite.
    with anyio.fail_after(10), pytest.raises(errors.RunInterrupted):
        await beside(
            stop_soon, at_the_limiter.pipeline(5, workers=2, stop=stop, idle=nothing_on_the_wire)
        )


async def test_second_ctrl_c_does_not_claim_in_flight_requests_finished() -> None:
    """After a second SIGINT the error says in-flight requests were cancelled."""
    stop = StopControl()
    in_flight = NeverFinishing()

    async def interrupt_twice() -> None:
        await in_flight.started.wait()
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep(0.05)

    with anyio.fail_after(10), pytest.raises(errors.RunInterrupted) as caught:
        await beside(
            interrupt_twice, in_flight.pipeline(3, workers=1, stop=stop, handle_signals=True)
        )
    assert "allowed to finish" not in str(caught.value)
    assert "second SIGINT" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
async def test_signal_during_payroll_submit_is_an_orderly_interrupt(
    stop_signal: signal.Signals, make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """After the rows (payroll's finish, its submit held open by a proxy in front of the
    simulator): message, outputs, exit 130; resume then submits the run once."""
    sim = make_simulator_thread()
    ids = onboard(sim, tmp_path, count=2)
    file = write_pay(tmp_path / "pay.csv", pay(ids))
    reached = anyio.Event()
    release = anyio.Event()
    upstream = ssl.create_default_context(cafile=str(sim.ca_path))

    async def proxy(request: web.Request) -> web.StreamResponse:
        first_submit = request.method == "POST" and request.path.endswith("/submit")
        if first_submit and not reached.is_set():
            # The first submit never reaches the simulator: the client is gone by then.
            reached.set()
            await release.wait()
            return web.Response(status=503)
        url = sim.base_url.rstrip("/") + request.path_qs.removeprefix("/v1")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, url, headers=headers, data=await request.read(), ssl=upstream
            ) as reply,
        ):
            body = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP}
            return web.Response(status=reply.status, body=body, headers=kept)

    run_dir = tmp_path / "run"
    args = ["payroll", str(file), *PERIOD_FLAGS, *CPU_BOUND_FLAGS, "--run-dir", str(run_dir)]
    async with StubServer(proxy, tmp_path) as stub:
        env = cli_env(sim, extra={"FLEXPAY_BASE_URL": stub.base_url})
        env["FLEXPAY_CA_BUNDLE"] = str(stub.ca)
        proc = start_cli(args, env=env, cwd=tmp_path)
        code, stderr = await _signal_when_reached(proc, reached, release, stop_signal)
        assert code == 130, stderr
        assert f"stopped by {stop_signal.name} while the job was being finished" in stderr
        assert (run_dir / "report.json").is_file()
        assert the_regular_run(sim)["status"] == "draft"
        # The same base URL as the interrupted run (the proxy), now passing everything through.
        resumed = await anyio.to_thread.run_sync(lambda: run_cli(args, env=env, cwd=tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert the_regular_run(sim)["status"] != "draft"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_signal_while_outputs_are_written_lets_them_finish(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    """A SIGTERM/SIGHUP while the outputs are written neither kills the process nor cuts the
    writing short: the run is reported interrupted (exit 130) once they are complete."""
    summary = RunSummary(run_dir=tmp_path)
    before = signal.getsignal(stop_signal)
    written: list[str] = []
    with _signals_deferred(summary):
        os.kill(os.getpid(), stop_signal)
        written.append("results.csv")  # the writing goes on after the signal
    assert written == ["results.csv"]
    assert isinstance(summary.stopped, errors.RunInterrupted)
    assert str(summary.stopped).startswith(f"stopped by {stop_signal.name} while the outputs")
    assert signal.getsignal(stop_signal) == before


async def _signal_when_reached(
    proc: ForkedProcess, reached: anyio.Event, release: anyio.Event, stop_signal: signal.Signals
) -> tuple[int, str]:
    """Once ``reached`` is set, send ``stop_signal``; return the exit code and stderr.

    ``release`` is set whatever happens (so a held request lets go), and a process still
    running at the end is killed: a failing test never leaves a CLI behind."""
    try:
        with anyio.fail_after(60):
            await reached.wait()
        proc.send_signal(stop_signal)
        code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=60))
        _, stderr = proc.communicate(timeout=10)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    return code, stderr
