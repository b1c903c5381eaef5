"""A ``BureauJob``: its wire form carries no token, amount or row data; its id and derived
secret are deterministic; a missing token names the job and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexpay_batch.bureau.job import (
    BureauJob,
    bureau_job,
    job_run_dir,
    job_settings,
    job_token,
    key_secret,
)
from flexpay_batch.bureau.manifest import load_manifest
from flexpay_batch.core import errors
from flexpay_batch.core.keys import derive_job_secret
from tests.bureau.kit import Org, onboard_job, payroll_job, write_manifest
from tests.harness import write_onboarding

ORG = Org("acme", "fps_acme_0123456789abcdef", "org_acme", "AC")
TOTAL = "987654.32"


def _jobs(tmp_path: Path) -> tuple[BureauJob, BureauJob, list[dict[str, str]]]:
    people = tmp_path / "people.csv"
    rows = write_onboarding(people, 3, prefix="AC")
    pay = tmp_path / "pay.csv"
    pay.write_text(
        "employee_external_id,hours,gross_amount,currency,memo\nAC00001,40.00,1234.56,USD,x\n",
        encoding="utf-8",
    )
    manifest = write_manifest(
        tmp_path / "bureau.toml",
        [onboard_job(ORG, people), payroll_job(ORG, pay, expected_total=TOTAL)],
    )
    entries = load_manifest(manifest).jobs
    onboard = bureau_job(entries[0], number=1, manifest=manifest)
    payroll = bureau_job(entries[1], number=2, manifest=manifest)
    return onboard, payroll, rows


def test_the_wire_form_holds_no_token_amount_or_row(tmp_path: Path) -> None:
    """to_json: org, kind, path, hash, the token's variable name; never the token, the control
    total, nor any value of a row."""
    onboard, payroll, rows = _jobs(tmp_path)
    env = {ORG.token_env: ORG.token}
    for job in (onboard, payroll):
        wire = job.to_json()
        assert job_token(job, env) not in wire
        assert ORG.token not in wire
        assert TOTAL not in wire
        assert "1234.56" not in wire
        for row in rows:
            for value in row.values():
                if len(value) >= 5 and value not in ("pg_weekly", "full_time", "part_time"):
                    assert value not in wire, value
        data = json.loads(wire)
        assert data["token_env"] == ORG.token_env
        assert "expected_total" not in data
    assert json.loads(payroll.to_json())["has_expected_total"] is True


def test_the_control_total_comes_back_from_the_manifest(tmp_path: Path) -> None:
    """A job read off the queue gets its control total again from its manifest."""
    _, payroll, _ = _jobs(tmp_path)
    received = BureauJob.from_json(payroll.to_json())
    assert received.expected_total is None
    assert received.with_control_total().engine_parameters()["expected_total"] == TOTAL
    assert received.job_id == payroll.job_id


def test_job_id_and_derived_secret_are_deterministic(tmp_path: Path) -> None:
    """The same job read twice has one id and one derived secret; another key secret or another
    job, another secret."""
    first, payroll, _ = _jobs(tmp_path)
    again, _, _ = _jobs(tmp_path)
    assert first.job_id == again.job_id
    assert first.job_id.startswith("acme-onboard-")
    secret = key_secret({"FLEXPAY_KEY_SECRET": "k" * 40}, required=True)
    assert secret is not None
    derived = derive_job_secret(secret, first.identity)
    assert derived == derive_job_secret(secret, again.identity)
    assert len(derived) == 32
    assert derived != derive_job_secret(b"o" * 40, first.identity)
    assert derived != derive_job_secret(secret, payroll.identity)


def test_the_key_secret_is_optional_unless_required() -> None:
    """Absent: None for run, an error for a worker; too short: an error either way."""
    assert key_secret({}, required=False) is None
    with pytest.raises(errors.ConfigError, match="FLEXPAY_KEY_SECRET is not set"):
        key_secret({}, required=True)
    with pytest.raises(errors.ConfigError, match="shorter than 32"):
        key_secret({"FLEXPAY_KEY_SECRET": "short"}, required=False)


def test_a_missing_token_names_the_job_and_the_key(tmp_path: Path) -> None:
    """job_token: 'job 1 (acme, onboard): token_env: the variable … is not set'."""
    onboard, _, _ = _jobs(tmp_path)
    with pytest.raises(errors.ConfigError) as caught:
        job_token(onboard, {})
    assert caught.value.message == (
        f"job 1 (acme, onboard): token_env: the variable {ORG.token_env} is not set on this host"
    )


def test_a_jobs_own_settings_beat_the_hosts_environment(tmp_path: Path) -> None:
    """base_url, ca_bundle and workers from the job override FLEXPAY_*; the rest come from
    the environment; the run directory is the job's own."""
    people = tmp_path / "people.csv"
    write_onboarding(people, 1, prefix="AC")
    ca = tmp_path / "ca.pem"
    job_table = onboard_job(
        ORG, people, base_url="https://own.example/v1/", ca_bundle=ca, workers=2
    )
    manifest = write_manifest(tmp_path / "bureau.toml", [job_table])
    job = bureau_job(load_manifest(manifest).jobs[0], number=1, manifest=manifest)
    env = {
        "FLEXPAY_BASE_URL": "https://host.example/v1/",
        "FLEXPAY_CA_BUNDLE": "/etc/host-ca.pem",
        "FLEXPAY_WORKERS": "16",
        "FLEXPAY_WRITE_LIMIT": "5/s",
    }
    settings = job_settings(job, env, run_dir=job_run_dir(job, tmp_path))
    assert settings.base_url == "https://own.example/v1/"
    assert settings.ca_bundle == ca
    assert settings.workers == 2
    assert settings.limits.write.rate.per_second == 5.0
    assert settings.run_dir == tmp_path / "bureau" / "acme" / job.job_id
    bare = bureau_job(
        load_manifest(write_manifest(tmp_path / "b.toml", [onboard_job(ORG, people)])).jobs[0],
        number=1,
    )
    from_host = job_settings(bare, env, run_dir=tmp_path)
    assert (from_host.base_url, from_host.workers) == ("https://host.example/v1/", 16)
