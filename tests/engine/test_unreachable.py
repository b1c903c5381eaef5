"""A server that cannot be reached stops the pre-flight after a few tries: exit 4, resumable,
saying what to check (it used to retry for 21 s, then exit 1 like rejected rows)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.core import errors
from flexpay_batch.core.policies import RetryPolicy
from flexpay_batch.engine.reach import CONNECT_TRIES, FailFastOnConnect
from tests.harness import run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _session() -> FailFastOnConnect:
    client = FlexPayClient("https://127.0.0.1:9/v1/", "fp_test_token_123")
    # No backoff: the test counts attempts, it does not wait for them.
    return FailFastOnConnect(client, RetryPolicy(base_delay=0.0, max_delay=0.0), RetryBudget())


async def _attempts(
    failure: errors.TransportError, gives_up_with: type[errors.FlexPayBatchError]
) -> tuple[int, errors.FlexPayBatchError]:
    """How many sends the session makes when every one fails with ``failure``, and the error
    it then raises (which must be a ``gives_up_with``)."""
    calls = 0

    async def send() -> ApiResponse:
        nonlocal calls
        calls += 1
        raise failure

    with pytest.raises(gives_up_with) as caught:
        await _session().call(send)
    return calls, caught.value


async def test_connections_that_never_open_stop_after_connect_tries() -> None:
    """Refused connects: CONNECT_TRIES attempts, then ServiceUnhealthy naming the host."""
    refused = errors.TransportError("could not connect: refused", indeterminate=False)
    calls, error = await _attempts(refused, errors.ServiceUnhealthy)
    assert calls == CONNECT_TRIES
    assert "127.0.0.1:9" in error.message
    assert "base URL" in error.hint
    assert error.exit_code == 4


async def test_other_failures_keep_the_runs_retry_policy() -> None:
    """A 503 or a mid-request reset is retried as before (max_attempts), not cut short."""
    reset = errors.TransportError("reset mid-request", indeterminate=True)
    calls, _ = await _attempts(reset, errors.TransportError)
    assert calls == RetryPolicy().max_attempts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_unreachable_base_url_exits_4_with_what_to_check(tmp_path: Path) -> None:
    """onboard against a closed port: exit 4 (API unavailable, resumable), what to check."""
    env = {"FLEXPAY_TOKEN": "fp_test_token_123"}
    url = f"https://127.0.0.1:{_closed_port()}/v1/"
    args = ["onboard", str(SAMPLES / "onboarding.csv"), "--base-url", url, "--run-dir", "run"]
    result = run_cli(args, env=env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert "cannot be reached" in result.stderr
    assert "flexpay-batch resume run" in result.stderr
    assert "Traceback" not in result.stderr
