"""Who a journal belongs to: the job (its kind, input, target, token fingerprint, secret).

::

    job = JobInfo.new(kind="onboarding", input_path=..., input_sha256=..., base_url=...,
                      token_fingerprint=..., config=settings)
    check_resumable(stored_job, job)      # ResumeRefused if this command may not continue it

A job is written once, when its journal is created; a resume keeps the stored one (its id and
its secret, from which every row's idempotency key derives).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast, get_args

from flexpay_batch.core.errors import ResumeRefused
from flexpay_batch.core.keys import new_job_secret
from flexpay_batch.journal.schema import JOB_COLUMNS, SCHEMA_VERSION, stored_version

__all__ = [
    "JobInfo",
    "JobKind",
    "JobSummary",
    "check_resumable",
    "new_job_id",
    "read_job",
    "write_job",
]

JobKind = Literal["onboarding", "payroll"]
_JOB_KINDS: Final = frozenset(get_args(JobKind))


def new_job_id(now: float | None = None) -> str:
    """Return a sortable, unique job id such as ``20260509T073525Z-3f9a1c`` (UTC)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class _JobIdentity:
    """What names a job, stored (``JobInfo``) and shown (``JobSummary``) alike: its id and
    kind, its input, the API it targets and the fingerprint of the token it began with."""

    job_id: str
    kind: JobKind
    input_path: str
    input_sha256: str
    base_url: str
    token_fingerprint: str


@dataclass(frozen=True, slots=True)
class JobSummary(_JobIdentity):
    """What may be shown about a job: everything but the secret (the token is never stored)."""

    config: Mapping[str, object]
    created_at: float
    schema_version: int


@dataclass(frozen=True, slots=True)
class JobInfo(_JobIdentity):
    """The identity of one job, written once when the journal is created.

    ``config_json`` is the effective configuration as canonical JSON and must hold no secret.
    ``secret`` is the per-job random value (``keys.new_job_secret``) from which row keys and
    idempotency keys are derived; it is *not* the API token and is useless against the API.
    Times are epoch seconds.
    """

    config_json: str
    secret: bytes = dataclasses.field(repr=False)
    created_at: float
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in _JOB_KINDS:
            raise ValueError(f"unknown job kind {self.kind!r}")

    @classmethod
    def new(
        cls,
        *,
        kind: JobKind,
        input_path: str | os.PathLike[str],
        input_sha256: str,
        base_url: str,
        token_fingerprint: str,
        config: Mapping[str, object],
        now: float | None = None,
        secret: bytes | None = None,
    ) -> JobInfo:
        """Return a fresh job: a new id, ``created_at`` = ``now`` or the clock, and a new
        random secret unless ``secret`` is given (a job several hosts may run derives it:
        ``keys.derive_job_secret``)."""
        created = time.time() if now is None else now
        return cls(
            job_id=new_job_id(created),
            kind=kind,
            input_path=str(input_path),
            input_sha256=input_sha256,
            base_url=base_url,
            token_fingerprint=token_fingerprint,
            config_json=json.dumps(
                dict(config), sort_keys=True, separators=(",", ":"), default=str
            ),
            secret=new_job_secret() if secret is None else secret,
            created_at=created,
        )

    @property
    def config(self) -> dict[str, object]:
        """The effective configuration, decoded from ``config_json``."""
        return cast(dict[str, object], json.loads(self.config_json))

    def summary(self) -> JobSummary:
        """Return the displayable part of the job (no secret)."""
        return JobSummary(
            job_id=self.job_id,
            kind=self.kind,
            input_path=self.input_path,
            input_sha256=self.input_sha256,
            base_url=self.base_url,
            token_fingerprint=self.token_fingerprint,
            config=self.config,
            created_at=self.created_at,
            schema_version=self.schema_version,
        )


def check_resumable(
    stored: JobInfo, requested: JobInfo, *, allow_token_change: bool = False
) -> None:
    """Raise ``ResumeRefused`` unless ``requested`` may continue the ``stored`` job.

    Compared: kind, input SHA-256, base URL and (unless ``allow_token_change``) the token
    fingerprint. The input *path* may differ (a moved file with the same bytes is the same
    input). ``job_id``, secret and times of ``requested`` are ignored: the stored ones win.
    """
    if stored.kind != requested.kind:
        raise ResumeRefused(
            f"The run directory holds a {stored.kind} job ({stored.job_id}); "
            f"this command starts a {requested.kind} job."
        )
    if stored.input_sha256 != requested.input_sha256:
        raise ResumeRefused(
            f"The input file changed since the run began (sha256 {stored.input_sha256} "
            f"then, {requested.input_sha256} now): {requested.input_path}. "
            "Resuming would send rows that differ from the ones already sent."
        )
    if stored.base_url != requested.base_url:
        raise ResumeRefused(
            f"The run began against {stored.base_url}; this invocation targets "
            f"{requested.base_url}."
        )
    if not allow_token_change and stored.token_fingerprint != requested.token_fingerprint:
        raise ResumeRefused(
            f"The run began with token {stored.token_fingerprint}; this invocation uses "
            f"token {requested.token_fingerprint}. A token of another organisation would "
            "apply rows a second time there.",
            hint=(
                "Use the token the run began with; if it was rotated or revoked, resume with "
                "--allow-token-change and a new token of the same organisation (its "
                "idempotency keys still replay); or pass --restart to begin a new job."
            ),
        )


# ── the job table ────────────────────────────────────────────────────────────────────────


def write_job(conn: sqlite3.Connection, job: JobInfo, now: float) -> None:
    """Insert ``job`` as the journal's one job row (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO job (id, job_id, kind, input_path, input_sha256, base_url, "
        "token_fingerprint, config_json, secret, created_at, updated_at, schema_version) "
        "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.job_id,
            job.kind,
            job.input_path,
            job.input_sha256,
            job.base_url,
            job.token_fingerprint,
            job.config_json,
            job.secret,
            job.created_at,
            now,
            job.schema_version,
        ),
    )


def read_job(
    conn: sqlite3.Connection, db: Path, *, with_secret: bool, versions: frozenset[int]
) -> JobInfo:
    """Read the job row of a journal whose schema version is one of ``versions``.

    The secret is read only when ``with_secret`` (never for status readers, who get
    ``b""``). Raises what ``schema.stored_version`` raises for a database that is not a
    journal, has lost its job, or has another version.
    """
    stored_version(conn, db, versions)
    columns = JOB_COLUMNS + (", secret" if with_secret else "")
    found = conn.execute(f"SELECT {columns} FROM job WHERE id = 1").fetchone()  # noqa: S608
    return JobInfo(
        job_id=found[0],
        kind=found[1],
        input_path=found[2],
        input_sha256=found[3],
        base_url=found[4],
        token_fingerprint=found[5],
        config_json=found[6],
        created_at=found[7],
        schema_version=found[8],
        secret=found[9] if with_secret else b"",
    )
