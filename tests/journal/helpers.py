"""Journals for the journal tests: a job identity with fixed, harmless values."""

from __future__ import annotations

import dataclasses

from flexpay_batch.journal.jobinfo import JobInfo

SHA_A = "a" * 64


def make_job(**changes: object) -> JobInfo:
    """Return a fresh onboarding job, with ``changes`` applied to its fields."""
    job = JobInfo.new(
        kind="onboarding",
        input_path="employees.csv",
        input_sha256=SHA_A,
        base_url="https://api.flexpay.dev/v1/",
        token_fingerprint="sha256:0123456789ab",
        config={"concurrency": 8, "limits": "100/min"},
        now=1_700_000_000.0,
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]
