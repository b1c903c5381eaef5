"""``resume --workers/--write-limit/...`` change this invocation's settings, nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.limitspec import ClassLimits, LimitSettings, Rate
from flexpay_batch.core.settings import Settings
from flexpay_batch.engine.opening import job_info
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.engine.resume import resume_request
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.journal.store import Journal

URL = "https://api.example.test/v1/"
SETTINGS = Settings(
    base_url=URL,
    workers=3,
    limits=LimitSettings(
        read=ClassLimits(Rate(120, 60.0), 10), write=ClassLimits(Rate(100, 60.0), 4)
    ),
)


def _journaled_run(tmp_path: Path) -> Path:
    source = tmp_path / "people.csv"
    source.write_text("external_id\n", encoding="utf-8")
    request = RunRequest(kind="onboarding", input_path=source, settings=SETTINGS)
    job = job_info(request, input_sha="0" * 64, base_url=URL, token="fps_admin_RESUMEFLAGS")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    Journal.create(run_dir / JOURNAL_NAME, job).close()
    return run_dir


def _resume(run_dir: Path, **overrides: object) -> Settings:
    return resume_request(
        run_dir,
        sandbox=False,
        ca_bundle=None,
        token_file=None,
        retry_rejected=False,
        json_logs=False,
        overrides=overrides,
    ).settings


def test_resume_flags_override_workers_and_limits(tmp_path: Path) -> None:
    """Given flags win; the rest (the read limit here) stays the run's own."""
    run_dir = _journaled_run(tmp_path)
    settings = _resume(run_dir, workers=1, write_limit="50/min", write_burst=2, read_limit=None)
    assert settings.workers == 1
    assert settings.limits.write == ClassLimits(Rate(50, 60.0), 2)
    assert settings.limits.read == SETTINGS.limits.read
    assert settings == dataclasses.replace(
        _resume(run_dir),
        workers=1,
        limits=dataclasses.replace(SETTINGS.limits, write=ClassLimits(Rate(50, 60.0), 2)),
    )


def test_no_resume_flags_keep_the_journaled_settings(tmp_path: Path) -> None:
    """Without flags the resumed settings are the journal's."""
    settings = _resume(_journaled_run(tmp_path))
    assert (settings.workers, settings.limits) == (SETTINGS.workers, SETTINGS.limits)


def test_a_bad_resume_flag_names_itself(tmp_path: Path) -> None:
    """--write-limit 5/fortnight is refused naming the flag, like on a fresh run."""
    with pytest.raises(ConfigError, match="--write-limit"):
        _resume(_journaled_run(tmp_path), write_limit="5/fortnight")
