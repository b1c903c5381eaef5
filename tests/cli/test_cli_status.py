"""``status``: running / stopped / finished from the writer lock, consistent counts, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexpay_batch.cli.status import read_status
from flexpay_batch.core.states import META_NEXT_STEP, META_UNFINISHED_WORK, RowStatus
from flexpay_batch.engine.opening import META_INPUT_ROWS
from flexpay_batch.journal.files import WriterLock, resolve_db
from flexpay_batch.journal.store import Journal
from flexpay_batch.journal.transitions import Done
from tests.harness import run_cli
from tests.journal.helpers import make_job
from tests.journal.test_journal import register


def make_run(run_dir: Path, *, input_rows: int, registered: int, done: int) -> None:
    """A journal for ``input_rows`` rows: ``registered`` reached, the first ``done`` created."""
    with Journal.create(run_dir, make_job()) as journal:
        journal.set_meta(META_INPUT_ROWS, str(input_rows))
        journal.commit_batch([register(row) for row in range(2, 2 + registered)])
        journal.commit_batch(
            [Done(row, f"emp_{row}", RowStatus.CREATED) for row in range(2, 2 + done)]
        )


def test_a_stopped_run_has_no_rate_and_its_counts_add_up(tmp_path: Path) -> None:
    """No writer: stopped; rows not reached yet are pending, so pending + ... == left."""
    make_run(tmp_path / "r", input_rows=500, registered=80, done=69)
    report = read_status(tmp_path / "r")
    assert report["state"] == "stopped"
    assert report["rows_per_second_last_minute"] is None
    assert report["eta_seconds"] is None
    counts = report["counts"]
    assert report["left"] == 431
    assert counts["pending"] + counts["in_flight"] + counts["failed"] == 431
    assert sum(counts.values()) == 500


def test_a_run_whose_lock_is_held_is_running_and_the_probe_does_not_disturb_it(
    tmp_path: Path,
) -> None:
    """A writer holding the lock: running (with a rate); after the probe it still holds it."""
    make_run(tmp_path / "r", input_rows=10, registered=10, done=4)
    db = resolve_db(tmp_path / "r")
    with WriterLock.take(db):
        assert read_status(tmp_path / "r")["state"] == "running"
        assert read_status(tmp_path / "r")["rows_per_second_last_minute"] is not None
        # Another process still cannot take the writer lock: the probe did not release it.
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path;"
                "from flexpay_batch.journal.files import WriterLock;"
                "WriterLock.take(Path(sys.argv[1]))",
                str(db),
            ],
            capture_output=True,
            text=True,
            env={**os.environ},
            check=False,
            timeout=60,
        )
        assert probe.returncode != 0
        assert "Another flexpay-batch process" in probe.stderr
    assert read_status(tmp_path / "r")["state"] == "stopped"


def test_status_exit_codes_and_json(tmp_path: Path) -> None:
    """--json prints one object; exit 0 finished, 1 rows left, 2 no journal."""
    make_run(tmp_path / "done", input_rows=3, registered=3, done=3)
    make_run(tmp_path / "half", input_rows=3, registered=3, done=1)
    finished = run_cli(["status", str(tmp_path / "done"), "--json"], env={}, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["state"] == "finished"
    stopped = run_cli(["status", str(tmp_path / "half")], env={}, cwd=tmp_path)
    assert stopped.returncode == 1, stopped.stderr
    assert "stopped: 2 rows left" in stopped.stdout
    assert "flexpay-batch resume" in stopped.stdout
    assert "ETA" not in stopped.stdout
    missing = run_cli(["status", str(tmp_path / "nothing")], env={}, cwd=tmp_path)
    assert missing.returncode == 2


def test_runs_lists_the_runs_under_the_default_root_newest_first(tmp_path: Path) -> None:
    """`runs` lists each run under the state directory once: those of runs/ (no organisation)
    and the bureau's bureau/ORG/JOB_ID (with it); tab-separated when piped, or JSON."""
    state = tmp_path / "state"
    root = state / "runs"
    make_run(root / "onboarding-a-1", input_rows=3, registered=3, done=3)
    make_run(root / "onboarding-b-2", input_rows=5, registered=2, done=1)
    (root / "not-a-run").mkdir()
    bureau = state / "bureau" / "acme" / "acme-onboard-0123456789ab"
    make_run(bureau, input_rows=4, registered=4, done=4)
    env = {"FLEXPAY_STATE_DIR": str(state)}
    result = run_cli(["runs"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0][:6] == ["started", "kind", "file", "org", "token", "state"]
    by_dir = {Path(line[-1]).resolve(): line for line in lines[1:]}
    a, b = (root / "onboarding-a-1").resolve(), (root / "onboarding-b-2").resolve()
    assert set(by_dir) == {a, b, bureau.resolve()}
    assert by_dir[a][3] == "-"
    assert by_dir[a][5:10] == ["finished", "3", "0", "0", "0"]
    assert by_dir[b][5:10] == ["stopped", "1", "0", "0", "4"]
    acme = by_dir[bureau.resolve()]
    assert (acme[3], *acme[5:10]) == ("acme", "finished", "4", "0", "0", "0")
    as_json = run_cli(["runs", "--json"], env=env, cwd=tmp_path)
    runs = {Path(run["directory"]).resolve(): run for run in json.loads(as_json.stdout)}
    assert {run["state"] for run in runs.values()} == {"finished", "stopped"}
    assert (runs[a]["org"], runs[bureau.resolve()]["org"]) == (None, "acme")


@pytest.mark.parametrize("layout", ["runs", "bureau"])
def test_runs_root_lists_run_directories_and_a_bureaus(tmp_path: Path, layout: str) -> None:
    """--root DIR lists DIR's run directories, and DIR/ORG/JOB_ID as a bureau keeps them; the
    state directory is not looked at."""
    root = tmp_path / "elsewhere"
    run_dir = root / "onboarding-a-1" if layout == "runs" else root / "beta" / "beta-onboard-1"
    make_run(run_dir, input_rows=2, registered=2, done=2)
    make_run(tmp_path / "state" / "runs" / "other", input_rows=1, registered=1, done=1)
    env = {"FLEXPAY_STATE_DIR": str(tmp_path / "state")}
    result = run_cli(["runs", "--root", str(root), "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [listed] = json.loads(result.stdout)
    assert Path(listed["directory"]).resolve() == run_dir.resolve()
    assert listed["org"] == (None if layout == "runs" else "beta")


def test_runs_says_where_it_looked_when_there_are_none(tmp_path: Path) -> None:
    """No run at all: exit 0, and stderr names both places under the state directory."""
    env = {"FLEXPAY_STATE_DIR": str(tmp_path / "state")}
    result = run_cli(["runs"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    state = tmp_path / "state"
    assert f"no runs under {state / 'runs'} or {state / 'bureau'}" in result.stderr


@pytest.mark.parametrize(
    ("unfinished", "next_step", "state", "shown_next"),
    [
        (
            "payroll run r1 left in draft: not submitted",
            "flexpay-batch resume RUN_DIR",
            "incomplete",
            "flexpay-batch resume {run_dir}",
        ),
        (
            "payroll run r1 left in draft: not submitted",
            "",
            "incomplete",
            "flexpay-batch resume {run_dir}",
        ),
        ("", "", "finished", None),
    ],
)
def test_settled_rows_with_the_jobs_work_left_read_incomplete(
    tmp_path: Path, unfinished: str, next_step: str, state: str, shown_next: str | None
) -> None:
    """Every row settled but unfinished work journaled: incomplete, with the next step naming
    the run directory; an empty entry (the work was done) is finished."""
    make_run(tmp_path / "r", input_rows=3, registered=3, done=3)
    with Journal.open(tmp_path / "r") as journal:
        journal.set_meta(META_UNFINISHED_WORK, unfinished)
        journal.set_meta(META_NEXT_STEP, next_step)
    report = read_status(tmp_path / "r")
    assert report["state"] == state
    assert report["unfinished_work"] == (unfinished or None)
    expected = None if shown_next is None else shown_next.format(run_dir=tmp_path / "r")
    assert report["next_step"] == expected
    assert set(report["meta"]).isdisjoint({META_UNFINISHED_WORK, META_NEXT_STEP})
