"""2xx replies that cannot be trusted as a row's outcome (issue 12), through the whole engine.

A stub FlexPay (tests/stub_server.py) really creates every employee it is sent, but answers
with a missing id, an id of the wrong type, the same id for every row, or the bearer token.
None of those may count as done: the row fails as ``unverified`` (exit 1), and a resume looks
it up with ``GET /employees?external_id=`` instead of creating it a second time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flexpay_batch.core.settings import Settings
from flexpay_batch.core.states import UNVERIFIED, RowStatus
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.run import run_job
from flexpay_batch.journal.store import Journal
from tests.engine.test_engine_integration import FAST_RETRY
from tests.fake_api import NO_LIMITS, TOKEN
from tests.harness import read_csv, write_onboarding
from tests.stub_server import StubServer

_REFERENCE = {
    "/v1/pay_groups": [{"id": "pg_weekly"}],
    "/v1/employment_types": [{"id": "full_time"}, {"id": "part_time"}],
}


class StubApi:
    """Creates what it is sent (``created``: external id → true id), answers per ``reply``."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.created: dict[str, str] = {}
        self.posts = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path in _REFERENCE:
            return web.json_response({"data": _REFERENCE[request.path], "next_cursor": None})
        if request.method == "GET" and request.path == "/v1/employees":
            wanted = request.query.get("external_id", "")
            found = [
                {"employee_id": self.created[wanted], "external_id": wanted}
                for _ in range(1)
                if wanted in self.created
            ]
            return web.json_response({"data": found, "next_cursor": None})
        if request.method == "POST" and request.path == "/v1/employees":
            self.posts += 1
            external = (await request.json())["external_id"]
            self.created.setdefault(external, f"emp_{external}")
            return web.json_response(self._answer(external), status=201)
        return web.json_response({"error": {"code": "not_found"}}, status=404)

    def _answer(self, external: str) -> dict[str, Any]:
        answers: dict[str, dict[str, Any]] = {
            "good": {"employee_id": self.created[external]},
            "missing": {"external_id": external},
            "empty": {"employee_id": ""},
            "number": {"employee_id": 12345},
            "same": {"employee_id": "emp_same"},
            "token": {"employee_id": TOKEN},
        }
        return answers[self.reply]


async def _run(stub: StubServer, source: Path, run_dir: Path) -> RunSummary:
    settings = Settings(
        base_url=stub.base_url,
        ca_bundle=stub.ca,
        run_dir=run_dir,
        workers=2,
        limits=NO_LIMITS,
        retry=FAST_RETRY,
    )
    request = RunRequest(kind="onboarding", input_path=source, settings=settings, run_dir=run_dir)
    return await run_job(request, base_url=stub.base_url, ca_bundle=stub.ca, token=TOKEN)


def _states(run_dir: Path) -> dict[int, RowStatus]:
    with Journal.open(run_dir) as journal:
        return journal.row_statuses()


@pytest.mark.parametrize("reply", ["missing", "empty", "number", "same", "token"])
async def test_unusable_2xx_is_unverified_and_resume_looks_it_up(
    reply: str, tmp_path: Path
) -> None:
    """A 201 without a usable id fails the row as unverified (exit 1); resume finds it by
    look-up and never POSTs it again."""
    source = tmp_path / "people.csv"
    people = write_onboarding(source, 3)
    run_dir = tmp_path / "run"
    api = StubApi(reply)
    async with StubServer(api.handle, tmp_path) as stub:
        first = await _run(stub, source, run_dir)
        states = _states(run_dir)
        assert first.exit_code == 1
        unverified = [row for row, state in states.items() if state is RowStatus.FAILED]
        # "same": the first row to come back keeps emp_same; the others are caught.
        assert len(unverified) == (2 if reply == "same" else 3)
        with Journal.open(run_dir) as journal:
            assert all(journal.row(row).code == UNVERIFIED for row in unverified)  # type: ignore[union-attr]
        posts = api.posts
        api.reply = "good"
        second = await _run(stub, source, run_dir)
    assert api.posts == posts, "resume created an unverified row a second time"
    assert second.exit_code == 0, second.journal_counts
    assert len(api.created) == len(people)
    found = [r["employee_id"] for r in read_csv(run_dir / "results.csv")]
    # Every id is distinct; the first row given "emp_same" cannot be told from a true owner.
    assert len(set(found)) == len(people)
    assert set(found) - {"emp_same"} <= set(api.created.values())


async def test_token_echoed_as_id_reaches_neither_journal_nor_results(tmp_path: Path) -> None:
    """A 201 whose id is the token: no byte of the run directory holds the token."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    run_dir = tmp_path / "run"
    async with StubServer(StubApi("token").handle, tmp_path) as stub:
        summary = await _run(stub, source, run_dir)
    assert summary.exit_code == 1
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert json.loads((run_dir / "report.json").read_text())


async def test_input_rewritten_during_the_run_is_detected_and_not_reread(
    tmp_path: Path,
) -> None:
    """A file rewritten mid-run: exit 1, and results.csv lists only the job's rows, none of the
    new file's."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2, prefix="OLD")
    run_dir = tmp_path / "run"
    api = StubApi("good")
    handle = api.handle

    async def rewrite_on_first_post(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and api.posts == 0:
            write_onboarding(source, 6, prefix="NEW")
        return await handle(request)

    async with StubServer(rewrite_on_first_post, tmp_path) as stub:
        summary = await _run(stub, source, run_dir)
    assert summary.input_changed
    assert summary.exit_code == 1
    results = read_csv(run_dir / "results.csv")
    assert len(results) <= 2
    assert not any("NEW" in value for row in results for value in row.values())
