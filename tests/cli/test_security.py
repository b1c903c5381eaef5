"""Issue 7's secrets and personal data: searched byte for byte in everything the tool writes.

The CLI runs as a subprocess (what an operator runs) with a known token and rows full of
known personal values; every byte it prints and every file it leaves in the run directory
(journal and its WAL included, snapshotted mid-run as well) is searched. Then the transport
rules (https only, certificates always verified) and the simulator's own access control.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme

from flexpay_batch.sim import Simulator, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES, PRESETS
from flexpay_batch.sim.operations import ENDPOINTS
from flexpay_batch.sim.testing import SimClient, employee_body, item_body, run_body
from tests.conftest import MakeSimulator, MakeSimulatorThread
from tests.harness import (
    cli_env,
    cli_running,
    fast_limits,
    limit_flags,
    run_cli,
    wait_for_cli_progress,
    write_csv,
    write_onboarding,
)

pytestmark = pytest.mark.slow

KNOWN_TOKEN = "fps_admin_KNOWN0secret0token0a1b2c3d4e5f"
LIMITS = fast_limits(writes_per_second=100.0, write_burst=10)
#: Personal values no output file may hold (the input file is the operator's, not ours).
PEOPLE = [
    {
        "external_id": "SEC00001",
        "first_name": "Quillonia",
        "last_name": "Vantrobek",
        "email": "quillonia.vantrobek@privacy-test.example",
        "tax_id": "913007351",
        "bank_account_number": "40817263549",
        "compensation_amount": "73123.45",
    },
    {
        "external_id": "SEC00002",
        "first_name": "Zebedaiah",
        "last_name": "Krumholtzen",
        "email": "zebedaiah.krumholtzen@privacy-test.example",
        "tax_id": "927004488",
        "bank_account_number": "55512398761",
        "compensation_amount": "91234.56",
    },
]
#: Rows the engine must reject, whose bad values are themselves personal.
BAD_ROWS = [
    {
        "external_id": "SEC00003",
        "first_name": "Ottoline",
        "last_name": "Prezewalska",
        "email": "ottoline prezewalska at nowhere",
        "tax_id": "918002222",
        "bank_account_number": "66677788899",
        "compensation_amount": "64321.09",
    },
    {
        "external_id": "SEC00004",
        "first_name": "Bartholomina",
        "last_name": "Uxbridgewell",
        "email": "bartholomina@privacy-test.example",
        "tax_id": "12-3",
        "bank_account_number": "12345678901234567890123",
        "compensation_amount": "58888.88",
    },
]
PERSONAL_FIELDS = ("first_name", "last_name", "email", "tax_id", "bank_account_number")


def secrets_of(rows: list[dict[str, str]]) -> list[str]:
    """Every personal value of ``rows`` (and the salary), the needles to search for."""
    values = [row[field] for row in rows for field in PERSONAL_FIELDS]
    values += [row["compensation_amount"] for row in rows]
    return [value for value in values if len(value) >= 5]


def token_forms(token: str) -> list[bytes]:
    """The token as bytes in the encodings an output could carry it in."""
    return [token.encode(), quote(token, safe="").encode(), token.encode("utf-16-le")]


def write_people(path: Path, count: int) -> list[dict[str, str]]:
    """Filler rows, then PEOPLE and BAD_ROWS in the middle, all in one onboarding CSV."""
    filler = write_onboarding(path, count, prefix="SF")
    base = filler[0]
    special = [{**base, **person} for person in PEOPLE + BAD_ROWS]
    rows = filler[: count // 2] + special + filler[count // 2 :]
    write_csv(path, rows)
    return rows


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below ``root``."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


def find_needles(blobs: dict[str, bytes], needles: list[bytes]) -> list[tuple[str, bytes]]:
    """(blob name, needle) for every needle found in a blob."""
    return [(name, needle) for name, data in blobs.items() for needle in needles if needle in data]


def snapshot_dir(run_dir: Path, into: Path) -> None:
    """Copy whatever the run directory holds right now (the live journal and WAL included)."""
    for path in files_under(run_dir):
        target = into / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, target)
        except FileNotFoundError:
            continue  # a WAL checkpointed away between listing and copying


def test_no_token_and_no_personal_value_in_any_output(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """A run with --json-logs, a mid-run snapshot of the run directory, a status call, and a
    --debug invocation that fails on the revoked token: the token is in no byte of any of it,
    no personal value is in any file the tool wrote or any line it printed, and every run
    file is owner-only (0600 in a 0700 directory)."""
    sim = make_simulator_thread(
        limits=LIMITS, tokens=(TokenSpec(KNOWN_TOKEN, ALL_SCOPES, name="admin"),)
    )
    source = tmp_path / "people.csv"
    rows = write_people(source, 120)
    run_dir = tmp_path / "run"
    snapshot = tmp_path / "snapshot"
    env = cli_env(sim)
    assert env["FLEXPAY_TOKEN"] == KNOWN_TOKEN
    args = ["onboard", str(source), "--run-dir", str(run_dir), "--json-logs", *limit_flags(LIMITS)]

    outputs: dict[str, bytes] = {}
    with cli_running(args, env=env, cwd=tmp_path) as proc:
        wait_for_cli_progress(sim, proc, 40)
        snapshot_dir(run_dir, snapshot)  # the live journal, WAL and all
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr  # the two bad rows were rejected
    outputs["run stdout"], outputs["run stderr"] = stdout.encode(), stderr.encode()
    assert any(line.startswith("{") for line in stderr.splitlines()), "no JSON log lines"

    status = run_cli(["status", str(run_dir), "--json"], env=env, cwd=tmp_path)
    assert status.returncode in (0, 1), status.stderr
    outputs["status stdout"], outputs["status stderr"] = (
        status.stdout.encode(),
        status.stderr.encode(),
    )

    # A failing invocation with --debug: a traceback is printed, and must be redacted.
    sim.revoke(KNOWN_TOKEN)
    debug = run_cli(["resume", str(run_dir), "--debug"], env=env, cwd=tmp_path)
    assert debug.returncode == 3, debug.stderr
    assert "Traceback" in debug.stderr  # --debug really printed one
    outputs["debug stdout"], outputs["debug stderr"] = (
        debug.stdout.encode(),
        debug.stderr.encode(),
    )

    files = {str(p.relative_to(tmp_path)): p.read_bytes() for p in files_under(run_dir)}
    files |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in files_under(snapshot)}
    assert any(name.endswith("-wal") for name in files), sorted(files)
    assert any(name.endswith("journal.sqlite") for name in files)
    everything = {**outputs, **files}

    assert find_needles(everything, token_forms(KNOWN_TOKEN)) == []
    personal = [value.encode() for value in secrets_of(PEOPLE + BAD_ROWS)]
    assert find_needles(everything, personal) == []

    # results.csv holds the external ids (the operator's own keys), nothing else of a row.
    results = (run_dir / "results.csv").read_text()
    assert "SEC00001" in results
    assert "SEC00003" in results
    rejects = (run_dir / "rejects.csv").read_text()
    assert ",email," in rejects
    assert ",tax_id," in rejects
    assert len([r for r in rows if r["external_id"].startswith("SEC")]) == 4

    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for path in files_under(run_dir):
        if path.suffix != ".lock" or path.stat().st_size:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_token_cannot_be_given_on_the_command_line(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """There is no --token flag (argv is visible in ps): using one is a usage error."""
    sim = make_simulator_thread(limits=LIMITS)
    source = tmp_path / "p.csv"
    write_onboarding(source, 1)
    env = {k: v for k, v in cli_env(sim).items() if k != "FLEXPAY_TOKEN"}
    result = run_cli(["onboard", str(source), "--token", KNOWN_TOKEN], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert sim.effects()["requests"]["total"] == 0


def test_http_base_url_is_refused_before_any_request(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path
) -> None:
    """FLEXPAY_BASE_URL=http://... exits 2 with a message saying HTTPS only; nothing is sent
    and the token is not echoed."""
    sim = make_simulator_thread(limits=LIMITS)
    source = tmp_path / "p.csv"
    write_onboarding(source, 3)
    plain = sim.base_url.replace("https://", "http://")
    env = cli_env(sim, extra={"FLEXPAY_BASE_URL": plain})
    result = run_cli(
        ["onboard", str(source), "--run-dir", str(tmp_path / "run")], env=env, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "https" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert env["FLEXPAY_TOKEN"] not in result.stderr + result.stdout
    assert sim.effects()["requests"]["total"] == 0


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_unverifiable_certificate_is_refused_never_bypassed(
    make_simulator_thread: MakeSimulatorThread, tmp_path: Path, trust: str
) -> None:
    """Without the simulator's CA (system trust, or a CA bundle of some other CA) the run
    exits 3 with a TLS message and a hint; not one API request got through."""
    sim = make_simulator_thread(limits=LIMITS)
    source = tmp_path / "p.csv"
    write_onboarding(source, 3)
    env = cli_env(sim)
    del env["FLEXPAY_CA_BUNDLE"]
    if trust == "another CA":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        env["FLEXPAY_CA_BUNDLE"] = str(other)
    result = run_cli(
        ["onboard", str(source), "--run-dir", str(tmp_path / "run")], env=env, cwd=tmp_path
    )
    assert result.returncode == 3, result.stderr
    assert "certificate" in result.stderr
    assert "did not verify" in result.stderr
    assert "CA bundle" in result.stderr  # the hint: how to trust a test server properly
    assert "Traceback" not in result.stderr
    assert env["FLEXPAY_TOKEN"] not in result.stderr + result.stdout
    assert sim.effects()["requests"]["total"] == 0


# ── the simulator's own access control ───────────────────────────────────────────────────


def concrete(path: str, ids: dict[str, str]) -> str:
    """An endpoint path with its placeholders filled in and the /v1/ prefix dropped."""
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no id for a placeholder in {path}"
    return path.removeprefix("/v1/")


async def org_one_ids(sim: Simulator) -> dict[str, str]:
    """Create one employee and a payroll run with one item in org_1; ids by placeholder name."""
    async with SimClient(sim) as api:
        employee = (await api.post("employees", json=employee_body("SEC-E1"))).json
        run = (await api.post("payroll_runs", json=run_body())).json
        item_path = f"payroll_runs/{run['payroll_run_id']}/items"
        item = (await api.post(item_path, json=item_body(employee["employee_id"]))).json
    return {
        "employee_id": employee["employee_id"],
        "payroll_run_id": run["payroll_run_id"],
        "item_id": item["item_id"],
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer fps_not_a_real_token", "Basic YWRtaW46YWRtaW4=", "Bearer revoked"],
)
async def test_no_endpoint_answers_without_a_valid_token(
    make_simulator: MakeSimulator, authorization: str | None
) -> None:
    """Every API endpoint answers 401 to no token, an unknown, a non-bearer or a revoked one,
    and no effect happens."""
    sim = await make_simulator(limits=fast_limits())
    ids = await org_one_ids(sim)
    sim.add_token(TokenSpec("revoked", ALL_SCOPES))
    sim.revoke("revoked")
    before = sim.effects()
    async with SimClient(sim) as api:
        for endpoint in ENDPOINTS:
            headers = {} if authorization is None else {"Authorization": authorization}
            reply = await api.request(
                endpoint.method,
                concrete(endpoint.path, ids),
                json={} if endpoint.method == "POST" else None,
                headers=headers,
                authorize=False,
            )
            assert reply.status == 401, (endpoint.method, endpoint.path, reply.status)
            assert reply.error["type"] == "authentication_error"
    after = sim.effects()
    assert after["employees"] == before["employees"]
    assert after["payroll_runs"] == before["payroll_runs"]
    assert after["payroll_item_changes"] == before["payroll_item_changes"]


@pytest.mark.parametrize("preset", ["read-only", "payroll-submitter"])
async def test_no_token_sees_beyond_its_scopes(make_simulator: MakeSimulator, preset: str) -> None:
    """A preset token gets 403 naming the scope on every endpoint whose scope it lacks."""
    sim = await make_simulator(limits=fast_limits())
    ids = await org_one_ids(sim)
    scopes = PRESETS[preset]
    async with SimClient(sim, token=preset) as api:
        for endpoint in ENDPOINTS:
            if endpoint.scope in scopes:
                continue
            reply = await api.request(
                endpoint.method,
                concrete(endpoint.path, ids),
                json={} if endpoint.method == "POST" else None,
            )
            assert reply.status == 403, (endpoint.path, reply.status)
            assert reply.error["required_scope"] == endpoint.scope


async def test_another_organisations_token_sees_nothing_of_ours(
    make_simulator: MakeSimulator,
) -> None:
    """A full-scope token of org_2: org_1's ids are 404 and its lists are empty."""
    sim = await make_simulator(limits=fast_limits())
    ids = await org_one_ids(sim)
    sim.add_token(TokenSpec("fps_org2_token", ALL_SCOPES, org_id="org_2"))
    bodies: dict[str, object] = {
        "/v1/payroll_runs/{payroll_run_id}/items": item_body(ids["employee_id"]),
        "/v1/payroll_runs/{payroll_run_id}/items/{item_id}": {"memo": "x"},
        "/v1/payroll_runs/{payroll_run_id}/submit": {
            "expected_item_count": 0,
            "expected_total": "0.00",
        },
    }
    async with SimClient(sim, token="fps_org2_token") as api:
        for endpoint in ENDPOINTS:
            if "{" not in endpoint.path:
                continue
            body = bodies.get(endpoint.path)
            reply = await api.request(endpoint.method, concrete(endpoint.path, ids), json=body)
            assert reply.status == 404, (endpoint.path, reply.status)
        listed = await api.get("employees")
        found = await api.get("employees", params={"external_id": "SEC-E1"})
    assert listed.status == 200
    assert listed.json["data"] == []
    assert found.json["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "_sim/effects", None),
        ("GET", "_sim/faults", None),
        ("PUT", "_sim/faults", {"error_500_rate": 1.0}),
        ("POST", "_sim/revoke", {"token": "x"}),
        ("POST", "_sim/tokens", {"token": "fps_mine", "scopes": ["write:employees"]}),
    ],
)
async def test_inspection_endpoints_need_the_admin_secret(
    make_simulator: MakeSimulator, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Every /_sim/ endpoint refuses no secret, a wrong one and an API token (401), and the
    refused calls change nothing."""
    sim = await make_simulator(limits=fast_limits())
    url = sim.base_url.removesuffix("v1/") + path
    admin_token = sim.tokens["admin"]
    async with SimClient(sim) as api:
        for headers in (
            {},
            {"X-Sim-Admin": "wrong"},
            {"X-Sim-Admin": admin_token},
            {"Authorization": f"Bearer {admin_token}"},
            {"X-Sim-Admin": sim.admin_secret[:-1]},
        ):
            async with api.session.request(method, url, json=body, headers=headers) as reply:
                assert reply.status == 401, (headers, reply.status)
                text = await reply.text()
            assert sim.admin_secret not in text
        good = {"X-Sim-Admin": sim.admin_secret}
        async with api.session.request("GET", url, headers=good) as reply:
            assert reply.status in (200, 405)
        assert (await api.get("pay_groups")).status == 200  # nothing was revoked or faulted
    assert "fps_mine" not in sim.tokens.values()


def test_the_sandbox_banner_and_outputs_are_free_of_the_token(tmp_path: Path) -> None:
    """A --sandbox run prints which (simulated) server it uses but never a token."""
    source = tmp_path / "p.csv"
    write_onboarding(source, 5)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH") if k in os.environ}
    result = run_cli(
        ["onboard", str(source), "--sandbox", "--run-dir", str(tmp_path / "run")],
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "SANDBOX" in result.stderr
    outputs = result.stdout + result.stderr
    assert "fps_" not in outputs
    for path in files_under(tmp_path / "run"):
        assert b"fps_" not in path.read_bytes(), path
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report  # the report exists and is JSON
