"""The queue under attack, with a real redis-server, real worker processes and the simulator
(``queue_support``): hosts whose clocks disagree, a Redis that loses its data mid-run.

Times are bounded generously (a loaded two-core machine); what is asserted is who ran a job,
how many attempts it took, and the simulator's effects ledger: every row applied once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from flexpay_batch.bureau.worker import KEY_CHECK_KEY, key_check
from flexpay_batch.sim import FaultConfig
from tests.bureau.queue_support import (
    HEARTBEAT,
    SETUP_WRITES_PER_SECOND,
    SWEEP,
    Bureau,
    finished,
    rows_done,
)
from tests.harness import project_pythonpath, start_cli

pytestmark = pytest.mark.slow

#: ``flexpay-batch`` with the process's wall clock (``time.time``, which saq's ``now`` reads)
#: moved by ``sys.argv[1]`` seconds: a host whose clock is wrong. It imports the CLI first,
#: then waits for a line on stdin before it starts (``_release``): the second of imports
#: overlaps the first worker's start instead of adding to the test's time.
_SKEWED = """
import sys, time
skew = float(sys.argv.pop(1))
real = time.time
time.time = lambda: real() + skew
import flexpay_batch.cli.app, flexpay_batch.cli.queue, flexpay_batch.bureau.worker
import flexpay_batch.bureau.job, flexpay_batch.engine.run
from flexpay_batch.entry import main
sys.argv[0] = "flexpay-batch"
sys.stdin.readline()
main()
"""


def _skewed_worker(bureau: Bureau, name: str, skew: float, *args: str) -> subprocess.Popen[str]:
    """Start a worker whose clock is ``skew`` seconds off; it waits for ``_release``."""
    env = bureau.env(state=f"state-{name}")
    env["PYTHONPATH"] = os.pathsep.join([project_pythonpath(), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-c", _SKEWED, str(skew), "worker", "--queue", bureau.url, *args]
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bureau.workers[name] = process  # type: ignore[assignment]  # Popen has what close() uses
    return process


def _release(process: subprocess.Popen[str]) -> None:
    """Let a ``_skewed_worker`` start."""
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.close()
    process.stdin = None  # communicate() (at the test's end) has nothing to send


def _sweeps(client: redis.Redis) -> int:
    """Sweeps done on this Redis so far: each reads the active list once (``bureau.sweep``;
    nothing else the workers do reads a list whole), so LRANGE calls count them."""
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return int(stats.get("cmdstat_lrange", {}).get("calls", 0))


@pytest.mark.parametrize("skew", [60.0, -60.0], ids=["ahead", "behind"])
def test_a_worker_with_a_wrong_clock_neither_sweeps_live_jobs_nor_delays_takeover(
    bureau: Bureau, skew: float
) -> None:
    """A second worker whose clock is a minute ahead (or behind) sweeps every second while
    the first runs a job: the job is not taken from its live worker (saq's own check,
    ``now() - touched > heartbeat`` across two hosts' clocks, took it at every sweep when
    ahead). Then the first is SIGKILLed: the skewed worker takes the job over within
    heartbeat + sweep (behind, saq's check waited a minute more) and every row applies once.

    The first worker sweeps once, at its start; that sweep's lock is then lifted, so every
    sweep while the job runs is the skewed worker's: counted, a heartbeat's worth of them.
    Meanwhile the simulator holds each request a few seconds, so a short job (its successor
    sends every row again: replays count against the limit) outlasts the sweeps."""
    manifest = bureau.manifest({"acme": 80})
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    args = ("--concurrency", "1", "--sweep-interval")
    skewed = _skewed_worker(bureau, "skewed", skew, *args, str(SWEEP))
    first = bureau.worker("first", *args, "3600")
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 10, timeout=60)
    bureau.sim.set_faults(FaultConfig(slow_rate=1.0, slow_seconds=4.0))  # 8 workers: 2 rows/s
    client = redis.Redis.from_url(bureau.url)
    try:
        lock = "saq:flexpay-bureau:sweep"
        deadline = time.monotonic() + 30
        while client.ttl(lock) < 60:  # the first worker's one sweep, locked for an hour
            assert time.monotonic() < deadline, "the first worker did not sweep"
            time.sleep(0.05)
        client.delete(lock)
        before = _sweeps(client)
        _release(skewed)
        bureau.wait_idle_workers(1)  # the skewed worker's slot (the first's runs the job)
        deadline = time.monotonic() + 60
        while _sweeps(client) < before + HEARTBEAT + 1:  # sweeps spanning a heartbeat
            assert time.monotonic() < deadline, "the skewed worker did not sweep"
            time.sleep(0.05)
    finally:
        client.close()
    job = bureau.jobs()[job_id]
    assert job["status"] == "active", job
    assert (bureau.worker_of(job), job["attempts"]) == ("first", 1), job
    first.kill()
    killed = time.monotonic()
    bureau.sim.set_faults(FaultConfig())
    bureau.wait_for(bureau.taken_over(job_id, "skewed"), timeout=60)
    takeover = time.monotonic() - killed
    print(f"takeover by a worker {skew:+.0f} s off: {takeover:.1f} s")
    assert takeover < HEARTBEAT + 2 * SWEEP + 6
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=90)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job
    assert job["attempts"] == 2
    bureau.assert_each_row_once(["acme"])


def _big_onboarding(path: Path, rows: int) -> None:
    """An onboarding file of ``rows`` rows, written fast (tens of MB)."""
    header = (
        "external_id,first_name,last_name,email,hire_date,pay_group_id,employment_type,"
        "compensation_type,compensation_amount,currency,tax_id,bank_routing_number,"
        "bank_account_number\n"
    )
    line = (
        "BG{n:07d},Annika,Muller,annika.{n}@example.com,2025-01-01,pg_weekly,part_time,"
        "hourly,44.28,USD,991004153,036282766,0822019866\n"
    )
    with path.open("w", encoding="utf-8") as handle:
        handle.write(header)
        handle.writelines(line.format(n=n) for n in range(rows))


def test_a_job_whose_large_file_takes_longer_to_count_than_a_heartbeat_is_not_swept(
    bureau: Bureau,
) -> None:
    """Counting a large file's rows takes longer than the heartbeat here (a one-second
    heartbeat, about two seconds of counting on a quiet machine, more on a loaded one): done
    on the worker's event loop it starved the heartbeat, so the job was swept from its live
    worker, retaken, swept again… (a large job could never finish). Off the loop, the job
    keeps its worker: the run goes on to its first request (the token is refused here, to
    end the job there) on attempt 1."""
    path = bureau.tmp / "large.csv"
    _big_onboarding(path, 200_000)
    manifest = bureau.tmp / "large.toml"
    manifest.write_text(
        "[[jobs]]\n"
        'org = "acme"\nkind = "onboard"\n'
        f'file = "{path}"\n'
        'token_env = "FLEXPAY_TOKEN_ACME"\n',
        encoding="utf-8",
    )
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", "1")
    env = bureau.env(state="state-only") | {"FLEXPAY_TOKEN_ACME": "fps_refused_" + "0" * 32}
    process = start_cli(["worker", "--queue", bureau.url, "--sweep-interval", str(SWEEP)], env=env)
    bureau.workers["only"] = process
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=120)
    job = bureau.jobs()[job_id]
    assert job["status"] == "failed", job
    assert job["result"]["stopped"] == "AuthenticationFailed", job["result"]
    assert job["attempts"] == 1, job


def test_redis_restarted_empty_mid_run_the_worker_says_so_and_a_new_enqueue_finishes_once(
    bureau: Bureau,
) -> None:
    """Redis dies mid-job and comes back empty (no persistence). The worker stays up, stops
    the run and puts its key secret's check value back. Enqueued again at once, the job
    waits on the queue while the stopping run still holds its journal on this host (it
    failed with "another process is using the journal" before), then finishes on the same
    worker, continuing the journal; every row applies once."""
    manifest = bureau.manifest({"globex": 100})
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    worker = bureau.worker("only", "--sweep-interval", str(SWEEP))
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 20, timeout=60)
    bureau.redis_server.kill()
    time.sleep(1)
    bureau.redis_server.restart()
    assert bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT)) == [job_id]
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=90)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job.get("result")
    bureau.assert_each_row_once(["globex"])
    bureau.assert_nothing_secret_in_redis()
    client = redis.Redis.from_url(bureau.url)
    assert client.get(KEY_CHECK_KEY) == key_check(bureau.key_secret.encode()).encode()
    client.close()
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    # Its run stopped on losing its lease; by then the job was enqueued again (or not yet:
    # then the worker said to enqueue it again). Either way: no internal error.
    assert "stopping: its token's lease expired" in stderr, stderr
    assert "internal error" not in stderr


def test_an_organisation_enqueued_behind_fifty_jobs_of_another_does_not_wait_for_them(
    bureau: Bureau,
) -> None:
    """Fifty small jobs of one organisation on the queue (they run one after another), then
    one job of another organisation enqueued behind all of them, two workers: the other
    organisation's job is done while the first organisation has done only a few of its
    fifty (its queued jobs go back to the end while their turn has not come)."""
    many = bureau.manifest([("acme", 1)] * 50, name="acme.toml")
    one = bureau.manifest({"globex": 5}, name="globex.toml")
    acme_ids = bureau.enqueue(many)
    (globex_id,) = bureau.enqueue(one)
    for name in ("w1", "w2"):
        bureau.worker(name, "--concurrency", "2")
    job = bureau.wait_for(
        lambda jobs: jobs[globex_id]["status"] == "complete" and jobs[globex_id], timeout=60
    )
    acme_done = sum(bureau.jobs()[key]["status"] == "complete" for key in acme_ids)
    print(f"globex done after {acme_done} of acme's 50 jobs")
    assert acme_done < 25
    assert job["attempts"] == 1


# Progress reaches Redis once per heartbeat/3 (1 s: about 20 rows at 20 writes/s); the kill
# window (at_row to the last of EMPLOYEES rows) must be wider than that, or the job can finish
# between two updates and the test waits for a state it never sees.
@pytest.mark.parametrize("at_row", [30, 70], ids=["mid-items", "near-submit"])
def test_a_payroll_job_whose_worker_is_killed_is_submitted_once_by_its_successor(
    fast_setup_bureau: Bureau, at_row: int
) -> None:
    """SIGKILL during an organisation's payroll (its items, or close to its submit): the
    other worker (another state dir: no journal) takes it over and finishes it; the period
    is submitted exactly once, each employee has one item, every key applies once. (The
    onboarding before it only sets the stage: it runs five times faster.)"""
    bureau = fast_setup_bureau
    manifest = bureau.manifest(
        {"acme": 100}, payroll=["acme"], onboarding_writes=SETUP_WRITES_PER_SECOND
    )
    _onboarding, payroll = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    first = bureau.worker("first", "--concurrency", "1", "--sweep-interval", str(SWEEP))
    bureau.wait_for(
        lambda jobs: jobs[payroll]["status"] == "active" and rows_done(jobs[payroll]) >= at_row,
        timeout=90,
    )
    bureau.worker("second", "--concurrency", "1", "--sweep-interval", str(SWEEP))
    first.kill()
    bureau.wait_for(lambda jobs: finished(jobs, 2), timeout=90)
    jobs = bureau.jobs()
    assert jobs[payroll]["status"] == "complete", jobs[payroll].get("result")
    effects = bureau.sim.effects()
    assert list(effects["runs_submitted_by_period"].values()) == [1]
    assert set(effects["runs_submitted"].values()) == {1}
    items = effects["payroll_items"]["by_run_and_employee"]
    assert len(items) == 100
    assert set(items.values()) == {1}
    assert all(count == 1 for count in effects["by_idempotency_key"].values())
    bureau.assert_each_row_once(["acme"])
    bureau.assert_nothing_secret_in_redis()


@pytest.mark.parametrize("frozen", [1.0, 2 * HEARTBEAT], ids=["short", "past-heartbeat"])
def test_a_frozen_redis_neither_hangs_the_worker_nor_repeats_a_row(
    bureau: Bureau, frozen: float
) -> None:
    """Redis stops answering without closing its connections (SIGSTOP: what a network cut
    looks like) for less than a heartbeat, or for two. Shorter: the job goes on with its
    worker (attempt 1). Longer: the job's hold expires on Redis's clock, the worker stops its
    run when Redis answers again, the job is handed on (here to the same worker, which
    continues its journal); it finishes, the worker is still up, every row applies once."""
    manifest = bureau.manifest({"initech": 100})
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    worker = bureau.worker("only", "--sweep-interval", str(SWEEP))
    bureau.wait_for(
        lambda jobs: jobs[job_id]["status"] == "active" and rows_done(jobs[job_id]) >= 20,
        timeout=60,
    )
    process = bureau.redis_server.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(frozen)
    finally:
        process.send_signal(signal.SIGCONT)
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=90)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job.get("result")
    if frozen < HEARTBEAT:
        assert job["attempts"] == 1
    bureau.assert_each_row_once(["initech"])
    assert worker.poll() is None


def test_a_worker_without_the_organisations_token_leaves_the_job_to_one_that_has_it(
    bureau: Bureau,
) -> None:
    """A worker lacking FLEXPAY_TOKEN_GLOBEX and FLEXPAY_TOKEN_INITECH (a host not yet
    given a new organisation's token) takes globex's job first: it puts it back instead of
    failing it for everyone, and a worker with the token runs it (attempt 1). With no such
    worker up, initech's job fails after a heartbeat (one second here), naming the variable
    and the workers that lack it."""
    env = bureau.env(state="state-lacking")
    for org in ("globex", "initech"):
        del env[f"FLEXPAY_TOKEN_{org.upper()}"]
    lacking = start_cli(["worker", "--queue", bureau.url, "--concurrency", "1"], env=env)
    bureau.workers["lacking"] = lacking
    bureau.wait_idle_workers(1)
    (globex,) = bureau.enqueue(bureau.manifest({"globex": 10}, name="globex.toml"))
    bureau.wait_for(lambda jobs: jobs[globex].get("meta", {}).get("no_token_on"), timeout=30)
    having = bureau.worker("having", "--concurrency", "1")
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=60)
    job = bureau.jobs()[globex]
    assert job["status"] == "complete", job.get("result")
    assert (bureau.worker_of(job), job["attempts"]) == ("having", 1)
    having.kill()
    manifest = bureau.manifest({"initech": 5}, name="initech.toml")
    (initech,) = bureau.enqueue(manifest, "--heartbeat", "1")  # it never runs: no hold to keep
    bureau.wait_for(lambda jobs: finished(jobs, 2), timeout=60)
    job = bureau.jobs()[initech]
    assert job["status"] == "failed"
    assert job["result"]["exit_code"] == 2
    message = job["result"]["message"]
    assert "FLEXPAY_TOKEN_INITECH is not set" in message
    assert "nor on the other workers" in message


def test_the_same_manifest_enqueued_twice_at_once_and_again_mid_job_runs_each_job_once(
    bureau: Bureau,
) -> None:
    """Two `enqueue`s of one manifest at the same moment, and a third while the worker is
    mid-job: one copy of the job is queued, it runs once (attempt 1), every row once."""
    manifest = bureau.manifest({"acme": 60})
    args = ["enqueue", str(manifest), "--queue", bureau.url]
    racing = [bureau.start_cli(args) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in racing]
    assert [process.returncode for process in racing] == [0, 0], outputs
    (job_id,) = {stdout.strip() for stdout, _ in outputs}
    assert sum("already queued" in stderr for _, stderr in outputs) == 1
    bureau.worker("only", "--concurrency", "2")
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 10, timeout=60)
    again = bureau.cli(args)
    assert again.returncode == 0, again.stderr
    assert "already queued or running" in again.stderr
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=60)
    job = bureau.jobs()[job_id]
    assert (job["status"], job["attempts"]) == ("complete", 1)
    bureau.assert_each_row_once(["acme"])
