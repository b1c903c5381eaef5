"""Everything is checked before anything is sent: ``prepare_jobs`` refuses a bad manifest, file,
token or setting with exit 2 naming the job and the key, and makes no run directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from flexpay_batch.bureau.local import prepare_jobs, shared_files
from flexpay_batch.core import errors
from tests.bureau.kit import Org, TomlValue, onboard_job, payroll_job, write_manifest
from tests.harness import write_onboarding
from tests.jobs.test_payroll_reconcile import pay, write_pay

ACME = Org("acme", "fps_acme_0123456789abcdef", "org_acme", "AC")
BETA = Org("beta", "fps_beta_0123456789abcdef", "org_beta", "BE")
ENV = {ACME.token_env: ACME.token, BETA.token_env: BETA.token}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    people = tmp_path / "people.csv"
    write_onboarding(people, 3, prefix="AC")
    return {"people": people, "pay": write_pay(tmp_path / "pay.csv", pay(["AC00001"]))}


def _problem(
    tmp_path: Path, jobs: list[dict[str, TomlValue]], env: dict[str, str] | None = None
) -> str:
    manifest = write_manifest(tmp_path / "bureau.toml", jobs)
    state = tmp_path / "state"
    with pytest.raises(errors.ConfigError) as caught:
        prepare_jobs(manifest, ENV if env is None else env, state_dir=state)
    assert caught.value.exit_code == 2
    assert not state.exists(), "a run directory was made before the checks passed"
    return caught.value.message


def test_good_jobs_are_ready_with_one_lane_per_token(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    """Two organisations' jobs: checked, hashed, numbered; acme's two jobs share a lane; the
    file both organisations onboard is warned about."""
    manifest = write_manifest(
        tmp_path / "bureau.toml",
        [
            onboard_job(ACME, files["people"]),
            onboard_job(BETA, files["people"]),
            payroll_job(ACME, files["pay"]),
        ],
    )
    jobs = prepare_jobs(manifest, ENV, state_dir=tmp_path / "state")
    assert [(job.label.number, job.label.org, job.label.kind) for job in jobs] == [
        (1, "acme", "onboard"),
        (2, "beta", "onboard"),
        (3, "acme", "payroll"),
    ]
    assert jobs[0].lane == jobs[2].lane != jobs[1].lane
    assert ACME.token not in jobs[0].lane
    # acme's people file copied into beta's job: run, but said at the start of the run.
    assert shared_files(jobs) == [
        "job 2 (beta, onboard): file: the same content as job 1 (acme, onboard)'s file: "
        "acme's rows are sent to beta as well"
    ]


def test_a_missing_token_variable_names_the_job_and_key(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    """beta's variable unset: job 2 and token_env named; acme's job does not hide it."""
    jobs = [onboard_job(ACME, files["people"]), onboard_job(BETA, files["people"])]
    message = _problem(tmp_path, jobs, env={ACME.token_env: ACME.token})
    assert message.startswith("job 2 (beta, onboard): token_env: the variable FLEXPAY_TOKEN_BETA")


def test_every_problem_is_listed_the_first_first(tmp_path: Path, files: dict[str, Path]) -> None:
    """Two bad jobs: both named, in manifest order."""
    jobs = [onboard_job(ACME, files["people"]), onboard_job(BETA, files["people"])]
    message = _problem(tmp_path, jobs, env={})
    assert message.startswith("job 1 (acme, onboard): token_env:")
    assert "also: job 2 (beta, onboard): token_env:" in message


def test_manifest_errors_name_the_job_and_key(tmp_path: Path, files: dict[str, Path]) -> None:
    """Unknown key and relative path: the manifest's own checks, same form."""
    unknown = _problem(tmp_path, [onboard_job(ACME, files["people"], colour="red")])
    assert "job 1 (acme): colour: unknown key" in unknown
    relative = _problem(tmp_path, [onboard_job(ACME, Path("people.csv"))])
    assert "job 1 (acme): file: file must be an absolute path" in relative


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _dangling_link(path: Path) -> Path:
    path.symlink_to(path.parent / "gone.csv")
    return path


def _missing(path: Path) -> Path:
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(_directory, "is a directory", id="directory"),
        pytest.param(_dangling_link, "no such file", id="dangling-symlink"),
        pytest.param(_missing, "no such file", id="missing"),
    ],
)
def test_a_file_that_cannot_be_read_is_named(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    """A directory, a dangling link or nothing where the file should be: exit 2 naming job
    and key (cases that hold for root too; CI runs as root)."""
    path = make(tmp_path / "people.csv")
    message = _problem(tmp_path, [onboard_job(ACME, path)])
    assert message.startswith("job 1 (acme, onboard): file: ")
    assert expected in message


def test_a_file_without_read_permission_is_named(tmp_path: Path) -> None:
    """chmod 000: exit 2 naming job and key (skipped where root reads it anyway)."""
    path = tmp_path / "people.csv"
    write_onboarding(path, 2)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user reads files whatever their mode (root)")
        message = _problem(tmp_path, [onboard_job(ACME, path)])
    finally:
        path.chmod(0o600)
    assert message.startswith("job 1 (acme, onboard): file: ")
    assert "cannot be read" in message


def test_a_file_of_the_other_kind_is_named(tmp_path: Path, files: dict[str, Path]) -> None:
    """A payroll file as an onboarding job: exit 2 before sending, naming job and file."""
    message = _problem(tmp_path, [onboard_job(ACME, files["pay"])])
    assert message.startswith("job 1 (acme, onboard): file: ")
    assert "payroll file" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"pay_group": ""}, "pay_group", id="empty-pay-group"),
        pytest.param(
            {"period_end": "2026-03-01"}, "period_end is before period_start", id="end-first"
        ),
        pytest.param(
            {"pay_date": "2026-02-01"}, "pay_date is before the pay period", id="paid-before"
        ),
    ],
)
def test_bad_payroll_parameters_are_named(
    tmp_path: Path, files: dict[str, Path], extra: dict[str, TomlValue], expected: str
) -> None:
    """Dates out of order (and an empty pay group): exit 2 naming the job and the key."""
    message = _problem(tmp_path, [payroll_job(ACME, files["pay"], **extra)])
    assert "(acme" in message
    assert expected in message


def test_a_payroll_job_without_pay_group_is_named(tmp_path: Path, files: dict[str, Path]) -> None:
    """The manifest's check: 'a payroll job needs pay_group'."""
    job = {k: v for k, v in payroll_job(ACME, files["pay"]).items() if k != "pay_group"}
    assert "job 1 (acme): a payroll job needs pay_group" in _problem(tmp_path, [job])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"write_limit": "fast"}, "write_limit", id="write-limit"),
        pytest.param({"base_url": "http://example.com/v1/"}, "https://", id="plain-http"),
        pytest.param({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle:", id="no-ca-bundle"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, files: dict[str, Path], extra: dict[str, TomlValue], expected: str
) -> None:
    """A job's own settings are checked up front, in the manifest's words."""
    manifest = write_manifest(
        tmp_path / "bureau.toml", [onboard_job(ACME, files["people"], **extra)]
    )
    with pytest.raises(errors.ConfigError) as caught:
        prepare_jobs(manifest, ENV, state_dir=tmp_path / "state")
    message = caught.value.message
    assert message.startswith("job 1 (acme, onboard): ")
    assert expected in message
    assert "--" not in message + caught.value.hint


def test_a_ca_bundle_that_is_not_pem_is_named(tmp_path: Path, files: dict[str, Path]) -> None:
    """A CA bundle that is a file but no certificate (the people file, say): exit 2 before
    anything is sent, not an internal error (70) once the job has begun."""
    job = onboard_job(ACME, files["people"], ca_bundle=files["people"])
    message = _problem(tmp_path, [job])
    assert message.startswith("job 1 (acme, onboard): ca_bundle: CA bundle ")
    assert "holds no usable certificate" in message


def test_the_same_job_twice_is_refused(tmp_path: Path, files: dict[str, Path]) -> None:
    """Two identical jobs would share one run directory: refused, naming both."""
    job = onboard_job(ACME, files["people"])
    message = _problem(tmp_path, [job, job])
    assert message.startswith("job 2 (acme, onboard): the same job as job 1")


@pytest.mark.parametrize("org", ["beta", "acme"], ids=["two-orgs", "one-org-two-variables"])
def test_one_token_for_two_organisations_is_refused(
    tmp_path: Path, files: dict[str, Path], org: str
) -> None:
    """beta's variable holding acme's token would write beta's people into acme's books:
    refused naming both jobs and variables, never the token. The same token under two
    variables of one organisation is fine."""
    others = tmp_path / "others.csv"
    write_onboarding(others, 2, prefix="OT")
    third = {**onboard_job(ACME, others), "org": org, "token_env": "OTHER_TOKEN"}
    jobs = [onboard_job(ACME, files["people"]), payroll_job(ACME, files["pay"]), third]
    env = {**ENV, "OTHER_TOKEN": ACME.token}
    if org == "acme":
        manifest = write_manifest(tmp_path / "bureau.toml", jobs)
        assert len(prepare_jobs(manifest, env, state_dir=tmp_path / "state")) == 3
        return
    message = _problem(tmp_path, jobs, env=env)
    assert message.startswith(
        "job 3 (beta, onboard): token_env OTHER_TOKEN holds the same token as "
        "job 1 (acme, onboard)'s token_env FLEXPAY_TOKEN_ACME"
    )
    assert ACME.token not in message


def test_a_token_file_others_can_read_is_named(tmp_path: Path, files: dict[str, Path]) -> None:
    """token_file readable by others: refused, naming the job and token_file."""
    token = tmp_path / "acme.token"
    token.write_text(ACME.token + "\n", encoding="utf-8")
    token.chmod(0o644)
    job = {k: v for k, v in onboard_job(ACME, files["people"]).items() if k != "token_env"}
    message = _problem(tmp_path, [{**job, "token_file": token}])
    assert message.startswith("job 1 (acme, onboard): token_file: token file ")
    assert "can be read by other users" in message
