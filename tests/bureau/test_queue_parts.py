"""The queue's parts on their own: org-interleaved order, the per-token lease (on a real
redis-server), and the checks `enqueue` and `worker` make before they touch the queue."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from flexpay_batch.bureau.lease import TokenLeases
from flexpay_batch.bureau.queue import DEFAULT_HEARTBEAT, DEFAULT_SWEEP, JobView, interleave
from flexpay_batch.bureau.worker import KEY_CHECK_KEY, key_check
from flexpay_batch.cli import queue as queue_cli
from flexpay_batch.cli.queue import _exit_code
from flexpay_batch.core import errors
from tests.bureau.kit import A_JOB
from tests.harness import run_cli, start_cli, write_onboarding
from tests.redisserver import RedisServer


def test_interleave_takes_one_job_per_organisation_in_turn() -> None:
    """a1 a2 a3 b1 c1 c2 → a1 b1 c1 a2 c2 a3: no organisation's jobs sit in a row."""
    names = ["a1", "a2", "a3", "b1", "c1", "c2"]
    jobs = [dataclasses.replace(A_JOB, org=name[0], file=f"/{name}.csv") for name in names]
    ordered = [Path(job.file).stem for job in interleave(jobs)]
    assert ordered == ["a1", "b1", "c1", "a2", "c2", "a3"]


async def test_a_lease_has_one_holder_until_released_or_expired(
    redis_server: RedisServer,
) -> None:
    """Only the holder refreshes or releases; an expired lease can be taken by another."""
    client = aioredis.Redis.from_url(redis_server.url)
    leases = TokenLeases(client)
    try:
        assert await leases.acquire("sha256:abc", "w1/job", ttl=5.0)
        assert not await leases.acquire("sha256:abc", "w2/job", ttl=5.0)
        assert not await leases.refresh("sha256:abc", "w2/job", ttl=5.0)
        await leases.release("sha256:abc", "w2/job")  # not the holder: nothing happens
        assert await leases.holder("sha256:abc") == "w1/job"
        assert await leases.refresh("sha256:abc", "w1/job", ttl=0.05)
        await asyncio.sleep(0.2)  # Redis expires it on its own clock
        assert await leases.acquire("sha256:abc", "w2/job", ttl=5.0)
        assert not await leases.refresh("sha256:abc", "w1/job", ttl=5.0)
        await leases.release("sha256:abc", "w2/job")
        assert await leases.holder("sha256:abc") is None
    finally:
        await client.aclose()


def _manifest(tmp_path: Path, files: list[Path], *extra: str) -> Path:
    tables = [
        f'[[jobs]]\norg = "org{n}"\nkind = "onboard"\nfile = "{path}"\n'
        f'token_env = "FLEXPAY_TOKEN_ORG{n}"\n'
        for n, path in enumerate(files, start=1)
    ]
    tables[-1] += "".join(line + "\n" for line in extra)
    manifest = tmp_path / "bureau.toml"
    manifest.write_text("\n".join(tables), encoding="utf-8")
    return manifest


@pytest.mark.parametrize(
    ("second_file", "extra", "message"),
    [
        pytest.param("missing.csv", (), "job 2 (org2, onboard): file: ", id="missing-file"),
        pytest.param("payroll.csv", (), "job 2 (org2, onboard): file: ", id="wrong-kind"),
        pytest.param(
            "good.csv",
            ('write_limit = "fast"',),
            "job 2 (org2, onboard): write_limit",
            id="bad-setting",
        ),
    ],
)
def test_enqueue_refuses_a_bad_job_naming_it_before_any_queue(
    tmp_path: Path, second_file: str, extra: tuple[str, ...], message: str
) -> None:
    """Exit 2 naming the job and the key (the checks of `run MANIFEST` but the tokens);
    the queue (nothing listens there) is never used."""
    good = tmp_path / "good.csv"
    write_onboarding(good, 2)
    (tmp_path / "payroll.csv").write_text("employee_external_id,gross_amount\nE1,10.00\n")
    manifest = _manifest(tmp_path, [good, tmp_path / second_file], *extra)
    done = run_cli(["enqueue", str(manifest), "--queue", "redis://127.0.0.1:1/0"], env={})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_enqueue_needs_no_token_and_adds_a_job_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The enqueuing host holds no token; enqueuing the same manifest again adds nothing."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    manifest = _manifest(tmp_path, [source])
    args = ["enqueue", str(manifest), "--queue", redis_server.url]
    first = run_cli(args, env={})
    again = run_cli(args, env={})
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout == again.stdout
    assert first.stdout.startswith("org1-onboard-")
    assert "already queued" in again.stderr


def test_a_worker_needs_the_key_secret(redis_server: RedisServer) -> None:
    """Without FLEXPAY_KEY_SECRET a taken-over job would get new keys: the worker refuses."""
    done = run_cli(["worker", "--queue", redis_server.url], env={}, timeout=30)
    assert done.returncode == 2
    assert "FLEXPAY_KEY_SECRET is not set" in done.stderr


def test_a_worker_with_another_key_secret_than_the_queues_refuses_to_start(
    redis_server: RedisServer,
) -> None:
    """The first worker's secret is remembered by a check value (not the secret): a worker
    whose secret differs would send taken-over jobs under new keys, so it exits 2."""
    client = redis.Redis.from_url(redis_server.url)
    client.set(KEY_CHECK_KEY, key_check(b"the-first-workers-secret-0123456789abcdef"))
    client.close()
    env = {"FLEXPAY_KEY_SECRET": "another-secret-of-the-same-length-0123456789"}
    done = run_cli(["worker", "--queue", redis_server.url], env=env, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "not the one the other workers of this queue use" in done.stderr


def _view(state: str, *, stopped: str | None = None, exit_code: int | None = 0) -> JobView:
    return JobView(
        id=f"org-onboard-{state}-{stopped}",
        org="org",
        kind="onboard",
        state=state,
        rows_done=1,
        rows_total=1,
        rejected=0,
        failed=0,
        worker=None,
        updated=None,
        attempts=1,
        exit_code=exit_code,
        stopped=stopped,
        message="why",
    )


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        pytest.param([_view("done")], 0, id="all-done"),
        pytest.param([_view("done"), _view("done", exit_code=1)], 1, id="rows-rejected"),
        pytest.param([_view("failed", stopped="skipped", exit_code=1)], 1, id="skipped"),
        pytest.param(
            [_view("failed", stopped="InputFileError", exit_code=2), _view("done", exit_code=1)],
            errors.InputFileError,
            id="changed-file",
        ),
        pytest.param(
            [
                _view("failed", stopped="ServiceUnhealthy", exit_code=4),
                _view("failed", stopped="InputFileError", exit_code=2),
                _view("failed", stopped="AuthenticationFailed", exit_code=3),
            ],
            errors.AuthenticationFailed,
            id="gravest-first",
        ),
        pytest.param([None], errors.ServiceUnhealthy, id="gone"),
    ],
)
def test_enqueue_wait_exits_like_run_manifest(
    views: list[JobView | None], expected: int | type[errors.FlexPayBatchError]
) -> None:
    """0 all done, 1 rows rejected (or a job skipped), else the error of the gravest stop."""
    ids = [f"job-{n}" for n in range(len(views))]
    if isinstance(expected, int):
        assert _exit_code(ids, views) == expected
    else:
        with pytest.raises(expected):
            _exit_code(ids, views)


def test_the_hidden_timing_flags_default_to_the_queues_own_values() -> None:
    """`enqueue --heartbeat` and `worker --sweep-interval` default to bureau.queue's values
    (written out in the command module, which must not import saq for --help)."""
    enqueue_flags = inspect.signature(queue_cli.enqueue).parameters
    worker_flags = inspect.signature(queue_cli.worker).parameters
    assert enqueue_flags["heartbeat"].default == DEFAULT_HEARTBEAT
    assert worker_flags["sweep_interval"].default == DEFAULT_SWEEP


@pytest.mark.parametrize("command", ["enqueue", "worker"])
def test_a_queue_url_with_a_password_is_refused_on_the_command_line(command: str) -> None:
    """argv shows in `ps`: a password goes in FLEXPAY_QUEUE_URL, as for --limiter-url."""
    args = [command, *(["manifest.toml"] if command == "enqueue" else [])]
    env = {"FLEXPAY_KEY_SECRET": "k" * 40}
    done = run_cli([*args, "--queue", "redis://:hunter2@127.0.0.1:1/0"], env=env)
    assert done.returncode == 2, done.stderr
    assert "--queue must not hold a password" in done.stderr
    assert "hunter2" not in done.stderr


def test_enqueue_wait_waits_out_a_dead_queue_and_says_to_enqueue_again_when_it_lost_the_jobs(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Redis dies while `enqueue --wait` watches (no worker here): it says the queue does
    not answer and waits, instead of stopping with an internal error; Redis comes back
    empty (no persistence): it names the jobs the queue no longer holds and says to enqueue
    the manifest again (exit 4)."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    manifest = _manifest(tmp_path, [source])
    waiting = start_cli(["enqueue", str(manifest), "--queue", redis_server.url, "--wait"], env={})
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 30
    while not list(client.scan_iter(match="saq:job:*")):
        assert time.monotonic() < deadline, "the job was not enqueued"
        time.sleep(0.1)
    client.close()
    redis_server.kill()
    time.sleep(3)  # several polls against a dead queue
    assert waiting.poll() is None, waiting.communicate(timeout=10)
    redis_server.restart()  # the same port, empty
    stdout, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 4, stderr
    assert "does not answer" in stderr
    assert "waiting for it" in stderr
    assert "no longer holds this job" in stderr
    assert "Enqueue the manifest again" in stderr
    assert "internal error" not in stderr.lower()
    assert stdout.startswith("org1-onboard-")
