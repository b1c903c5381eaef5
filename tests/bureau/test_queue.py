"""Bureau jobs on the Redis job queue: real redis-server, real worker processes, the simulator
serving three organisations over HTTPS (``queue_support``).

Takeover times are measured against the configured heartbeat and sweep interval (short here,
seconds); parallelism as a ratio of measured durations, never as an absolute time. Every wait
is bounded (``Bureau.wait_for``, ``communicate``), so no test can hang.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.bureau.queue_support import HEARTBEAT, SWEEP, Bureau, Jobs, finished, rows_done

pytestmark = pytest.mark.slow


def test_a_killed_workers_job_is_finished_by_another_within_the_takeover(bureau: Bureau) -> None:
    """SIGKILL mid-job: another worker (another state dir, so a fresh journal) takes the job
    over within heartbeat + sweep and finishes it; every employee is created exactly once."""
    manifest = bureau.manifest({"acme": 80})
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    first = bureau.worker("first", "--sweep-interval", str(SWEEP))
    bureau.wait_for(lambda jobs: jobs[job_id]["status"] == "active", timeout=60)
    second = bureau.worker("second", "--sweep-interval", str(SWEEP))  # starts beside the job
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 20, timeout=60)
    bureau.wait_idle_workers(7)  # the second worker's four slots and the first's three idle
    first.kill()
    killed = time.monotonic()
    bureau.wait_for(bureau.taken_over(job_id, "second"), timeout=60)
    takeover = time.monotonic() - killed
    print(f"takeover after SIGKILL: {takeover:.1f} s")
    # Stuck after HEARTBEAT s without a touch, found by the next sweep, put back after the
    # sweep's lock; dequeued at once. Slack for a loaded machine.
    assert takeover < HEARTBEAT + 2 * SWEEP + 4
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=60)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job
    assert job["result"]["exit_code"] == 0
    assert job["result"]["counts"].get("replayed", 0) >= 1  # the first worker's rows replayed
    bureau.assert_each_row_once(["acme"])
    assert second.poll() is None


def test_three_organisations_run_in_parallel_on_three_workers(bureau: Bureau) -> None:
    """Three organisations' jobs on three workers overlap in time: together they take about
    as long as the slowest one alone, not the sum; enqueued again they are not run again;
    `runs --queue` lists them done."""
    manifest = bureau.manifest({"acme": 60, "globex": 60, "initech": 60})
    for name in ("w1", "w2", "w3"):
        bureau.worker(name, "--concurrency", "1")
    bureau.wait_idle_workers(3)  # so no job waits for a worker's start-up
    ids = bureau.enqueue(manifest)
    bureau.wait_for(lambda jobs: finished(jobs, 3), timeout=90)
    jobs = bureau.jobs()
    assert {jobs[i]["status"] for i in ids} == {"complete"}
    starts = [jobs[i]["started"] / 1000 for i in ids]
    ends = [jobs[i]["completed"] / 1000 for i in ids]
    assert max(starts) < min(ends), "the three jobs never all ran at once"
    longest = max(end - start for start, end in zip(starts, ends, strict=True))
    ratio = (max(ends) - min(starts)) / longest
    print(f"three organisations: {max(ends) - min(starts):.1f} s, longest alone {longest:.1f} s")
    assert ratio < 1.8, f"three jobs took {ratio:.2f} x the longest one"
    assert len({jobs[i]["worker_id"] for i in ids}) == 3
    bureau.assert_each_row_once(["acme", "globex", "initech"])
    again = bureau.cli(["enqueue", str(manifest), "--queue", bureau.url])
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done already") == 3  # a finished job is not run again
    assert {i: bureau.jobs()[i]["completed"] for i in ids} == {i: jobs[i]["completed"] for i in ids}
    listed = bureau.cli(["runs", "--queue", bureau.url])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t")[:4] == ["org", "kind", "state", "rows"]
    assert sorted(line.split("\t")[:4] for line in lines[1:]) == [
        [org, "onboard", "done", "60/60"] for org in ("acme", "globex", "initech")
    ]
    as_json = json.loads(bureau.cli(["runs", "--queue", bureau.url, "--json"]).stdout)
    assert {(job["org"], job["state"], job["rows_done"]) for job in as_json} == {
        (org, "done", 60) for org in ("acme", "globex", "initech")
    }
    assert all(job["worker"] and job["updated"].endswith("Z") for job in as_json)


def test_a_file_changed_after_enqueue_fails_its_job_and_the_others_finish(
    bureau: Bureau,
) -> None:
    """The worker checks the file's SHA-256 first: the changed file's job fails with the
    SHA message and sends nothing, the organisation's next job is skipped, the other
    organisation's finishes; `enqueue --wait` exits 2 (the failed job's stop class)."""
    manifest = bureau.manifest([("acme", 20), ("globex", 20), ("globex", 10)])
    waiting = bureau.start_cli(["enqueue", str(manifest), "--queue", bureau.url, "--wait"])
    bureau.wait_for(lambda jobs: len(jobs) == 3, timeout=30)
    changed = bureau.files["globex"][0]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    bureau.worker("w1", "--concurrency", "2")
    stdout, stderr = waiting.communicate(timeout=90)
    assert waiting.returncode == 2, stderr
    assert "changed since the job was enqueued" in stderr
    acme, globex, later = stdout.split()  # org-interleaved order
    jobs = bureau.jobs()
    assert jobs[acme]["status"] == "complete"
    assert jobs[globex]["status"] == "failed"
    assert jobs[globex]["result"]["stopped"] == "InputFileError"
    assert jobs[later]["status"] == "failed"
    assert jobs[later]["result"]["stopped"] == "skipped"
    assert f"{later} (globex, onboard): failed" in stderr
    effects = bureau.sim.effects()["employees"]["by_external_id"]
    assert not [key for key in effects if key.startswith("GL")]  # globex's ids: GL2…, GL3…


@pytest.mark.parametrize(("signals", "exit_code"), [(1, 0), (2, 130)], ids=["once", "twice"])
def test_sigterm_hands_the_running_job_to_another_worker_at_once(
    bureau: Bureau, signals: int, exit_code: int
) -> None:
    """SIGTERM: the worker checkpoints its job and puts it back, so another worker resumes
    it in seconds (the heartbeat is 30 s: no timeout involved); each row is sent once. A
    second SIGTERM cancels the requests in flight instead of waiting for them (exit 130)."""
    manifest = bureau.manifest({"globex": 80})
    (job_id,) = bureau.enqueue(manifest)
    first = bureau.worker("first", state="shared")
    bureau.wait_for(lambda jobs: jobs[job_id]["status"] == "active", timeout=60)
    bureau.worker("second", state="shared")  # starts beside the job
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 20, timeout=60)
    bureau.wait_idle_workers(7)  # the second worker's four slots and the first's three idle
    for _ in range(signals):
        first.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # two signals at once would be one
    stopped = time.monotonic()
    bureau.wait_for(bureau.taken_over(job_id, "second"), timeout=60)
    handover = time.monotonic() - stopped
    print(f"handover after SIGTERM x{signals}: {handover:.1f} s")
    assert handover < 15  # a heartbeat timeout would take 30 s + a sweep
    assert first.wait(timeout=30) == exit_code
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=60)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job
    assert job["attempts"] == 1  # the hand-over did not spend an attempt
    bureau.assert_each_row_once(["globex"])
    if signals == 1:
        # Same host, same state dir: the second worker continued the journal, whose rows
        # had all settled (requests in flight finished first): nothing was sent again.
        assert job["result"]["counts"] == {"created": 80}


def test_a_worker_that_lost_its_job_stops_and_leaves_it_to_the_next(bureau: Bureau) -> None:
    """Another worker's name on a running job (what a takeover after missed heartbeats
    leaves): its worker stops the run gracefully and writes nothing more to the record;
    the sweep hands the job on after its heartbeat and it finishes, every row once."""
    manifest = bureau.manifest({"initech": 100})
    (job_id,) = bureau.enqueue(manifest, "--heartbeat", str(HEARTBEAT))
    bureau.worker("only", "--sweep-interval", str(SWEEP))
    bureau.wait_for(lambda jobs: rows_done(jobs[job_id]) >= 20, timeout=60)

    def let_go(jobs: Jobs) -> bool:
        # The worker's heartbeat may write the record back between our read and write: do
        # it again until the record stays ours for more than one heartbeat interval.
        if jobs[job_id]["worker_id"] != "someone-else":
            bureau.rewrite_job(job_id, worker_id="someone-else")
            return False
        time.sleep(HEARTBEAT / 3 + 0.5)
        return bool(bureau.jobs()[job_id]["worker_id"] == "someone-else")

    bureau.wait_for(let_go, timeout=30)
    bureau.wait_for(lambda jobs: finished(jobs, 1), timeout=60)
    job = bureau.jobs()[job_id]
    assert job["status"] == "complete", job
    assert job["attempts"] == 2  # swept once, taken again
    assert bureau.worker_of(job) == "only"
    bureau.assert_each_row_once(["initech"])


def test_one_organisation_runs_one_job_at_a_time_while_others_run_beside_it(
    bureau: Bureau,
) -> None:
    """Two jobs of one token on a worker with three slots: the second waits for the first
    (put back while the token is busy, spending no attempt); the other organisation's job
    runs beside the first."""
    manifest = bureau.manifest([("acme", 40), ("acme", 20), ("globex", 40)])
    first, globex, second = bureau.enqueue(manifest)  # org-interleaved order
    bureau.worker("w1", "--concurrency", "3")
    bureau.wait_for(lambda jobs: finished(jobs, 3), timeout=60)
    jobs = bureau.jobs()
    assert jobs[second]["started"] >= jobs[first]["completed"]
    assert jobs[globex]["started"] < jobs[first]["completed"]
    assert jobs[first]["started"] < jobs[globex]["completed"]
    assert [jobs[key]["attempts"] for key in (first, globex, second)] == [1, 1, 1]
    bureau.assert_each_row_once(["acme", "globex"])


def test_nothing_secret_or_personal_is_left_in_redis(bureau: Bureau) -> None:
    """After three organisations' onboarding and one's payroll with a control total (run
    after its onboarding, as the manifest orders them), no key or value in Redis holds a
    token, the key secret, a name, an email, a tax id, a bank account or an amount from the
    files or the manifest (the worker re-reads the control total)."""
    manifest = bureau.manifest({"acme": 15, "globex": 15, "initech": 15}, payroll=["acme"])
    ids = bureau.enqueue(manifest)
    bureau.worker("w1", "--concurrency", "3")
    bureau.wait_for(lambda jobs: finished(jobs, 4), timeout=60)
    jobs = bureau.jobs()
    assert {jobs[key]["status"] for key in ids} == {"complete"}
    onboarding, payroll = sorted((k for k in ids if k.startswith("acme")), key=lambda k: "pay" in k)
    assert jobs[payroll]["started"] >= jobs[onboarding]["completed"]
    assert bureau.sim.effects()["runs_submitted_by_period"]  # the total matched: submitted
    assert f"{bureau.totals['acme']:.2f}" in bureau.amounts  # the scan looks for the total
    haystack = bureau.assert_nothing_secret_in_redis()
    assert "flexpay-batch:limiter" in haystack  # and it saw the shared limits
