"""The manifest: unknown keys refused, paths absolute, payroll keys complete, every error one
sentence naming the job, its organisation and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flexpay_batch.bureau.job import bureau_job
from flexpay_batch.bureau.manifest import in_manifest_words, load_manifest, parse_manifest
from flexpay_batch.core import errors

ONBOARD: dict[str, Any] = {
    "org": "acme",
    "kind": "onboard",
    "file": "/srv/bureau/acme/new-hires.csv",
    "token_env": "FLEXPAY_TOKEN_ACME",
}
PAYROLL: dict[str, Any] = {
    "org": "beta",
    "kind": "payroll",
    "file": "/srv/bureau/beta/pay.csv",
    "token_file": "/etc/flexpay/beta.token",
    "pay_group": "pg_weekly",
    "period_start": "2026-03-02",
    "period_end": "2026-03-08",
    "pay_date": "2026-03-13",
}


def _problem(*jobs: dict[str, Any]) -> str:
    with pytest.raises(errors.ConfigError) as caught:
        parse_manifest({"jobs": list(jobs)}, source="bureau.toml")
    assert caught.value.exit_code == 2
    return caught.value.message


def test_a_valid_manifest_reads_every_job() -> None:
    """Two jobs, their kinds mapped to the engine's, the settings the job sets."""
    manifest = parse_manifest({"jobs": [{**ONBOARD, "workers": 2}, PAYROLL]}, source="m")
    onboard, payroll = manifest.jobs
    assert (onboard.org, onboard.engine_kind, onboard.file) == (
        "acme",
        "onboarding",
        Path("/srv/bureau/acme/new-hires.csv"),
    )
    assert onboard.setting_flags()["workers"] == 2
    assert payroll.engine_kind == "payroll"
    assert payroll.pay_group == "pg_weekly"


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        pytest.param(
            [ONBOARD, {**ONBOARD, "org": "beta", "colour": "red"}],
            "job 2 (beta): colour: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            [{**ONBOARD, "file": "acme/new-hires.csv"}],
            "job 1 (acme): file: file must be an absolute path",
            id="relative-file",
        ),
        pytest.param(
            [{**PAYROLL, "token_file": "beta.token"}],
            "job 1 (beta): token_file: the path must be an absolute path",
            id="relative-token-file",
        ),
        pytest.param(
            [{k: v for k, v in PAYROLL.items() if k != "pay_group"}],
            "job 1 (beta): a payroll job needs pay_group",
            id="payroll-without-pay-group",
        ),
        pytest.param(
            [{**PAYROLL, "period_end": "2026-02-30"}],
            "job 1 (beta): period_end:",
            id="impossible-date",
        ),
        pytest.param(
            [{**ONBOARD, "pay_group": "pg_weekly"}],
            "job 1 (acme): pay_group: only payroll jobs take these keys",
            id="payroll-key-on-onboarding",
        ),
        pytest.param(
            [{**ONBOARD, "prune": True}],
            "job 1 (acme): prune: only payroll jobs take these keys",
            id="prune-on-onboarding",
        ),
        pytest.param(
            [{**ONBOARD, "token_file": "/etc/flexpay/acme.token"}],
            "job 1 (acme): give exactly one of token_env and token_file",
            id="two-token-sources",
        ),
        pytest.param(
            [{**ONBOARD, "token_env": "fps-live-abc123"}],
            "job 1 (acme): token_env: token_env must be the NAME",
            id="token-instead-of-variable",
        ),
        pytest.param(
            # A pasted token that would pass as a variable name would be echoed in
            # "the variable … is not set": names are capitals, digits and '_'.
            [{**ONBOARD, "token_env": "fps_live_0a1b2c3d4e5f6a7b8c9d"}],
            "job 1 (acme): token_env: token_env must be the NAME",
            id="token-that-looks-like-a-name",
        ),
        pytest.param(
            [{**ONBOARD, "org": "../etc"}],
            "job 1 (../etc): org: org must be 1-64 letters",
            id="org-not-a-name",
        ),
        pytest.param(
            [{**PAYROLL, "expected_total": "12.345"}],
            "job 1 (beta): expected_total: expected_total must be an amount",
            id="total-with-three-decimals",
        ),
        pytest.param([{**ONBOARD, "kind": "paystubs"}], "job 1 (acme): kind:", id="unknown-kind"),
    ],
)
def test_a_bad_job_is_named_with_its_key(jobs: list[dict[str, Any]], expected: str) -> None:
    """The error names the job's number, organisation and key (ConfigError, exit 2)."""
    message = _problem(*jobs)
    assert message.startswith("manifest bureau.toml: ")
    assert expected in message


def test_a_payroll_job_can_prune(tmp_path: Path) -> None:
    """prune = true reaches the payroll's parameters (its items of employees not in the file
    are deleted) and makes it another job than without."""
    pay = tmp_path / "pay.csv"
    pay.write_text("employee_external_id,hours,gross_amount,currency\nE1,40,1.00,USD\n")
    plain, pruning = parse_manifest(
        {"jobs": [{**PAYROLL, "file": str(pay)}, {**PAYROLL, "file": str(pay), "prune": True}]},
        source="m",
    ).jobs
    assert bureau_job(pruning, number=2).parameters["prune"] is True
    assert bureau_job(plain, number=1).parameters["prune"] is False
    assert bureau_job(plain, number=1).job_id != bureau_job(pruning, number=2).job_id


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        (
            "for a deliberate correction run, run the command with --off-cycle",
            "for a deliberate correction run, set off_cycle = true in its [[jobs]] table",
        ),
        (
            "to submit it, run the same payroll command without --no-submit",
            "to submit it, remove its submit = false",
        ),
        ("--prune deletes the items of employees not in the file", "prune = true deletes"),
        (
            "the run's pay date is 2026-03-13, this command says 2026-03-12 (--pay-date)",
            "(pay_date)",
        ),
        ("Check the base URL (--base-url or FLEXPAY_BASE_URL", "(base_url or FLEXPAY_BASE_URL"),
    ],
)
def test_the_engines_advice_is_put_in_the_manifests_words(said: str, meant: str) -> None:
    """A bureau's operator edits the job's [[jobs]] table: no advice names a flag `run`
    does not have."""
    assert meant in in_manifest_words(said)
    assert "--" not in in_manifest_words(said)


def test_no_jobs_at_all_is_an_error() -> None:
    """An empty manifest is refused, not run as nothing."""
    with pytest.raises(errors.ConfigError, match="jobs"):
        parse_manifest({"jobs": []}, source="m")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('[[job]]\norg = "acme"\n', "no [[jobs]] tables (found 'job')", id="job-typo"),
        pytest.param('[jobs]\norg = "acme"\n', "jobs is one [jobs] table", id="table-not-array"),
        pytest.param(
            'org = "acme"\n[[jobs]]\norg = "acme"\n',
            "org: unknown key at the top level",
            id="key-above-the-jobs",
        ),
    ],
)
def test_a_manifest_without_jobs_tables_says_how_to_write_them(
    tmp_path: Path, text: str, expected: str
) -> None:
    """``[[job]]``, ``[jobs]`` or a key above the first job: the outline is named, and the
    hint shows ``[[jobs]]``."""
    path = tmp_path / "bureau.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(errors.ConfigError) as caught:
        load_manifest(path)
    assert caught.value.message.startswith(f"manifest {path}: {expected}")
    assert "[[jobs]]" in caught.value.hint


def test_a_windows_manifest_with_bom_and_crlf_is_read(tmp_path: Path) -> None:
    """A byte order mark and CRLF line ends (Notepad): read like any other manifest."""
    path = tmp_path / "bureau.toml"
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in ONBOARD.items()]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(["[[jobs]]", *lines, ""]).encode())
    (job,) = load_manifest(path).jobs
    assert (job.org, job.token_env) == ("acme", "FLEXPAY_TOKEN_ACME")


def test_a_file_that_is_not_toml_is_one_sentence(tmp_path: Path) -> None:
    """Bad TOML and a missing manifest are ConfigErrors naming the manifest."""
    bad = tmp_path / "bureau.toml"
    bad.write_text("[[jobs]\norg = ", encoding="utf-8")
    with pytest.raises(errors.ConfigError, match="is not valid TOML"):
        load_manifest(bad)
    with pytest.raises(errors.ConfigError, match="does not exist"):
        load_manifest(tmp_path / "missing.toml")
