"""``resume`` rebuilds a run's settings from its journal: every field, old journals included."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate
from flexpay_batch.core.policies import RetryPolicy, Timeouts
from flexpay_batch.core.settings import DEFAULT_BASE_URL, Settings
from flexpay_batch.engine.opening import job_info
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.resume import resume_request
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.journal.jobinfo import JobInfo
from flexpay_batch.journal.store import Journal

URL = "https://api.example.test/v1/"
TOKEN = "fps_admin_RESUME0TOKEN0c0ffee"

SETTINGS = Settings(
    base_url=URL,
    ca_bundle=Path("/etc/original-ca.pem"),
    workers=3,
    limits=LimitSettings(
        read=ClassLimits(Rate(120, 60.0), 10), write=ClassLimits(Rate(7.5, 10.0), 4)
    ),
    timeouts=Timeouts(connect=2.0, read=7.0, total=20.0),
    retry=RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=3.0, deadline=45.0),
    key_ttl=7200.0,
)


def _request(input_path: Path, *, sandbox: bool = False) -> RunRequest:
    return RunRequest(
        kind="onboarding",
        input_path=input_path,
        settings=SETTINGS,
        sandbox=sandbox,
    )


def _journal(run_dir: Path, job: JobInfo) -> None:
    run_dir.mkdir(mode=0o700)
    Journal.create(run_dir / JOURNAL_NAME, job).close()


def _resume(run_dir: Path, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "sandbox": False,
        "ca_bundle": None,
        "token_file": None,
        "retry_rejected": False,
        "json_logs": False,
    }
    return resume_request(run_dir, **(options | overrides)).settings


def test_resume_restores_every_setting_the_run_began_with(tmp_path: Path) -> None:
    """Timeouts, row deadline, backoff and key TTL come back as they were, not as defaults."""
    input_path = tmp_path / "people.csv"
    input_path.write_text("external_id\n", encoding="utf-8")
    job = job_info(_request(input_path), input_sha="0" * 64, base_url=URL, token=TOKEN)
    _journal(tmp_path / "run", job)
    assert _resume(tmp_path / "run") == SETTINGS


def test_resume_overrides_ca_bundle_and_token_file_and_the_sandbox_url(tmp_path: Path) -> None:
    """A CA bundle or token file given to ``resume`` wins; a sandbox run gets the default URL."""
    input_path = tmp_path / "people.csv"
    input_path.write_text("external_id\n", encoding="utf-8")
    request = _request(input_path, sandbox=True)
    job = job_info(request, input_sha="0" * 64, base_url=URL, token=TOKEN)
    _journal(tmp_path / "run", job)
    settings = _resume(
        tmp_path / "run", ca_bundle=Path("/etc/new-ca.pem"), token_file=Path("/home/op/token")
    )
    assert settings == dataclasses.replace(
        SETTINGS,
        base_url=DEFAULT_BASE_URL,
        ca_bundle=Path("/etc/new-ca.pem"),
        token_file=Path("/home/op/token"),
    )


def test_a_journal_written_by_an_earlier_version_still_resumes(tmp_path: Path) -> None:
    """The former layout (``Settings.describe()``): key_ttl_seconds is read, the timeouts are
    restored, and the row deadline it never stored takes its default."""
    old_config = {
        "base_url": URL,
        "ca_bundle": "/etc/original-ca.pem",
        "workers": 3,
        "read_limit": "120/min",
        "read_burst": 10,
        "write_limit": "45/min",
        "write_burst": 4,
        "timeouts": {"connect": 2.0, "read": 7.0, "total": 20.0},
        "max_attempts": 4,
        "key_ttl_seconds": 7200.0,
        "encoding": None,
        "job": {},
    }
    job = JobInfo.new(
        kind="onboarding",
        input_path=str(tmp_path / "people.csv"),
        input_sha256="0" * 64,
        base_url=URL,
        token_fingerprint="fp",
        config=old_config,
    )
    _journal(tmp_path / "run", job)
    settings = _resume(tmp_path / "run")
    assert settings == dataclasses.replace(
        SETTINGS,
        limits=LimitSettings(
            read=ClassLimits(Rate(120, 60.0), 10), write=ClassLimits(Rate(45, 60.0), 4)
        ),
        retry=RetryPolicy(max_attempts=4),
    )
