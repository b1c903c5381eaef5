"""One bureau job: what travels to a worker (``BureauJob``) and the plain function that runs it.

::

    job = bureau_job(manifest_job, number=1)              # checks the file, takes its SHA-256
    payload = job.to_json()                                # safe to put on a queue
    summary = await run_bureau_job(BureauJob.from_json(payload), env=os.environ,
                                   state_dir=state_root, store=store)

``run_bureau_job`` is engine-agnostic on purpose: a plain async function of the job and the
worker's environment, so the in-process ``run MANIFEST``, a job-queue worker, or a larger
deployment's workflow engine can all host it.

What a ``BureauJob`` holds is chosen so that nothing secret or personal leaves the host that
reads the manifest: the organisation's name, the kind, the file's absolute path and SHA-256,
the NAME of the token's environment variable (or the token file's path), settings and job
parameters. Never a token, never the file's contents, names or amounts: a payroll job's
control total (``expected_total``) stays out of ``to_json`` too; the worker reads it from the
manifest itself (``manifest`` and ``number`` say where), on the storage it reads the file from.

Exactly once across hosts: the job secret, from which every row's idempotency key derives,
is ``derive_job_secret(FLEXPAY_KEY_SECRET, identity)`` where the identity is the job's
organisation, kind, file SHA-256 and parameters. A worker that takes over a job whose first
worker died (its disk and journal gone) sends every row under the same key, and the server
replays its first answer instead of acting again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, overload

import anyio

from flexpay_batch.api.client import validate_base_url
from flexpay_batch.api.ratelimit.redis_store import RedisStore
from flexpay_batch.bureau.manifest import ManifestJob, load_manifest
from flexpay_batch.core import errors
from flexpay_batch.core.keys import canonical_json, derive_job_secret, file_sha256
from flexpay_batch.core.redact import install_redaction
from flexpay_batch.core.settings import MIN_TOKEN_LENGTH, Settings, load_settings, load_token
from flexpay_batch.engine.pipeline import StopControl
from flexpay_batch.engine.progress import Reporter
from flexpay_batch.engine.request import RunRequest, RunSummary
from flexpay_batch.engine.run import run_job
from flexpay_batch.engine.rundir import bureau_runs_root, default_runs_root
from flexpay_batch.input.readers import require_regular_file
from flexpay_batch.jobs.payroll import ControlTotals, PayPeriod, payroll_parameters

#: The environment variable every worker reads the bureau's key secret from.
KEY_SECRET_ENV = "FLEXPAY_KEY_SECRET"  # noqa: S105 (a variable name, not a secret)
#: The shortest key secret accepted (it keys every idempotency key of the bureau).
MIN_KEY_SECRET_LENGTH = 32
_WIRE_FORMAT = 1


@dataclass(frozen=True)
class BureauJob:
    """A manifest job made ready to run anywhere: its file's SHA-256 taken, parameters built.

    ``job_id`` is deterministic (organisation, kind, file hash, parameters): the same job
    enqueued twice has the same id.
    """

    org: str
    kind: str  # "onboard" | "payroll"
    engine_kind: str
    file: str
    file_sha256: str
    token_env: str | None
    token_file: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    #: The engine's job parameters, without the control total (an amount: see below).
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The manifest (absolute path) and the job's number in it, from 1.
    manifest: str | None = None
    number: int | None = None
    #: A payroll job's control total. Never serialised: ``to_json`` leaves it out and the
    #: worker reads it again from ``manifest`` (``with_control_total``).
    expected_total: str | None = field(default=None, repr=False)
    has_expected_total: bool = False

    @property
    def identity(self) -> dict[str, Any]:
        """What makes this job this job (and keys its secret): never a secret itself.

        The control total is left out: it checks the file, it does not change what is sent.
        """
        return {
            "org": self.org,
            "kind": self.engine_kind,
            "file_sha256": self.file_sha256,
            "parameters": self.parameters,
        }

    def engine_parameters(self) -> dict[str, Any]:
        """The parameters the engine's job kind takes (the control total put back)."""
        if self.engine_kind != "payroll":
            return dict(self.parameters)
        if self.has_expected_total and self.expected_total is None:
            raise errors.UsageError(f"{self.org}: the control total was not read back")
        return {**self.parameters, "expected_total": self.expected_total}

    def describe(self) -> str:
        """``job 3 (acme, payroll)``: how messages name this job (as ``ManifestJob.describe``)."""
        if self.number is None:
            return f"{self.org} ({self.kind})"
        return f"job {self.number} ({self.org}, {self.kind})"

    @property
    def job_id(self) -> str:
        digest = hashlib.sha256(canonical_json(self.identity).encode("utf-8")).hexdigest()
        return f"{self.org}-{self.kind}-{digest[:12]}"

    def to_json(self) -> str:
        """The job as JSON, for a queue: no token, no row data, no amount."""
        data = asdict(self)
        del data["expected_total"]
        return json.dumps({"format": _WIRE_FORMAT, **data}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BureauJob:
        data = json.loads(text)
        if data.pop("format", None) != _WIRE_FORMAT:
            raise errors.UsageError("a queued job of an unknown format (a newer flexpay-batch?)")
        return cls(**data)

    def with_control_total(self) -> BureauJob:
        """This job with its control total read again from its manifest (if it has one).

        The manifest's job ``number`` must still be this job (organisation, kind, file):
        ``errors.ConfigError`` otherwise, naming what changed.
        """
        if not self.has_expected_total or self.expected_total is not None:
            return self
        if self.manifest is None or self.number is None:
            raise errors.ConfigError(f"{self.org}: the job names no manifest to read its total")
        manifest = load_manifest(Path(self.manifest))
        if self.number > len(manifest.jobs):
            raise errors.ConfigError(
                f"{self.org}: manifest {self.manifest} no longer has job {self.number}"
            )
        entry = manifest.jobs[self.number - 1]
        if (entry.org, entry.kind, str(entry.file)) != (self.org, self.kind, self.file):
            raise errors.ConfigError(
                f"{self.org}: job {self.number} of manifest {self.manifest} is now another job",
                hint="Enqueue the manifest again as it is now.",
            )
        total = None if entry.expected_total is None else str(entry.expected_total)
        return replace(self, expected_total=total, has_expected_total=total is not None)


def bureau_job(job: ManifestJob, *, number: int, manifest: Path | None = None) -> BureauJob:
    """``job`` of the manifest (its ``number``, from 1, names it in errors) made ready to run:
    the file checked (a regular, readable file) and hashed, payroll parameters built.

    Raises ``errors.ConfigError`` (exit 2) naming the job and the key.
    """
    where = job.describe(number)
    try:
        require_regular_file(job.file)
        sha = file_sha256(job.file)
    except errors.FlexPayBatchError as exc:
        raise errors.ConfigError(f"{where}: file: {exc}") from None
    except FileNotFoundError:
        raise errors.ConfigError(f"{where}: file: {job.file} does not exist") from None
    except OSError as exc:
        raise errors.ConfigError(
            f"{where}: file: {job.file} cannot be read ({type(exc).__name__})"
        ) from None
    parameters: dict[str, Any] = {}
    total: str | None = None
    if job.kind == "payroll":
        parameters = _payroll_parameters(job, where)
        total = parameters.pop("expected_total")
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in job.setting_flags().items()}
    return BureauJob(
        org=job.org,
        kind=job.kind,
        engine_kind=job.engine_kind,
        file=str(job.file),
        file_sha256=sha,
        token_env=job.token_env,
        token_file=str(job.token_file) if job.token_file is not None else None,
        settings={k: v for k, v in flags.items() if v is not None},
        parameters=parameters,
        manifest=str(manifest) if manifest is not None else None,
        number=number,
        expected_total=total,
        has_expected_total=total is not None,
    )


def _payroll_parameters(job: ManifestJob, where: str) -> dict[str, Any]:
    # The manifest's validator made sure a payroll job has all four.
    assert job.pay_group is not None
    assert job.period_start is not None
    assert job.period_end is not None
    assert job.pay_date is not None
    try:
        period = PayPeriod(
            pay_group_id=job.pay_group,
            period_start=job.period_start,
            period_end=job.period_end,
            pay_date=job.pay_date,
        )
    except errors.UsageError as exc:
        message = str(exc).replace("--", "").replace("-", "_")
        raise errors.ConfigError(f"{where}: {message}") from None
    control = ControlTotals(item_count=job.expected_count, total=job.expected_total)
    return payroll_parameters(
        period,
        submit=True if job.submit is None else job.submit,
        control=control,
        off_cycle=bool(job.off_cycle),
        prune=bool(job.prune),
    )


def job_token(job: BureauJob, env: Mapping[str, str]) -> str:
    """The job's API token, from this host's environment or token file.

    ``errors.ConfigError`` (exit 2) naming the job (``describe``) and the manifest key
    (``token_env`` or ``token_file``) when it is not there; the token is never part of any
    message.
    """
    where = job.describe()
    if job.token_file is not None:
        try:
            return load_token(Path(job.token_file), env)
        except errors.ConfigError as exc:
            raise errors.ConfigError(f"{where}: token_file: {exc}", hint=exc.hint) from None
    assert job.token_env is not None
    token = env.get(job.token_env, "").strip()
    if not token:
        raise errors.ConfigError(
            f"{where}: token_env: the variable {job.token_env} is not set on this host",
            hint="Every host that runs the job needs the organisation's token in its own "
            "environment; tokens never travel through the manifest or the queue.",
        )
    if any(ch.isspace() for ch in token) or not token.isprintable():
        raise errors.ConfigError(
            f"{where}: token_env: {job.token_env} holds white space or control text"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise errors.ConfigError(f"{where}: token_env: {job.token_env} is too short to be a token")
    return token


@overload
def key_secret(env: Mapping[str, str], *, required: Literal[True]) -> bytes: ...
@overload
def key_secret(env: Mapping[str, str], *, required: bool) -> bytes | None: ...
def key_secret(env: Mapping[str, str], *, required: bool) -> bytes | None:
    """The bureau's key secret from ``FLEXPAY_KEY_SECRET``; ``None`` if absent and not required.

    A queue worker requires it: without it a job taken over by another host would be sent
    under new keys (the server's own guards would still stop most duplicates, not all).
    """
    value = env.get(KEY_SECRET_ENV, "").strip()
    if not value:
        if not required:
            return None
        raise errors.ConfigError(
            f"{KEY_SECRET_ENV} is not set",
            hint="Every worker of the bureau needs the same secret (at least "
            f"{MIN_KEY_SECRET_LENGTH} characters), e.g. from `openssl rand -hex 32`; it keys "
            "the idempotency keys, so a job taken over by another host replays, not repeats.",
        )
    if len(value) < MIN_KEY_SECRET_LENGTH:
        raise errors.ConfigError(
            f"{KEY_SECRET_ENV} is shorter than {MIN_KEY_SECRET_LENGTH} characters",
            hint="Use a random value such as the output of `openssl rand -hex 32`.",
        )
    return value.encode("utf-8")


def job_settings(job: BureauJob, env: Mapping[str, str], *, run_dir: Path) -> Settings:
    """The job's settings: defaults < the worker's ``FLEXPAY_*`` environment < the job's own."""
    # Paths travel as text; load_settings parses them like any flag's value.
    flags: dict[str, object | None] = {**job.settings, "run_dir": run_dir}
    return load_settings(flags=flags, env=env, toml_path=None)


def job_run_dir(job: BureauJob, state_dir: Path) -> Path:
    """Where this host keeps the job's journal and outputs: ``<state>/bureau/<org>/<job id>``."""
    return bureau_runs_root(state_dir) / job.org / job.job_id


def verify_file(job: BureauJob) -> None:
    """Refuse to run a job whose file is not the one enqueued (``errors.InputFileError``)."""
    try:
        require_regular_file(Path(job.file))
        actual = file_sha256(job.file)
    except FileNotFoundError:
        raise errors.InputFileError(
            f"{job.describe()}: the file {job.file} does not exist on this host",
            hint="Every worker needs the job's file at the same absolute path (shared storage).",
        ) from None
    except OSError as exc:
        raise errors.InputFileError(
            f"{job.describe()}: the file {job.file} cannot be read here ({type(exc).__name__})"
        ) from None
    if actual != job.file_sha256:
        raise errors.InputFileError(
            f"{job.describe()}: the file {job.file} changed since the job was enqueued "
            f"(SHA-256 {actual[:12]}…, expected {job.file_sha256[:12]}…); nothing was sent",
            hint="Enqueue the job again with the file as it is now, or put the old file back.",
        )


async def run_bureau_job(
    job: BureauJob,
    *,
    env: Mapping[str, str],
    state_dir: Path,
    store: RedisStore | None = None,
    key_secret_bytes: bytes | None = None,
    reporter: Reporter | None = None,
    stop: StopControl | None = None,
    allow_token_change: bool = False,
) -> RunSummary:
    """Run ``job`` to its end on this host and return its summary.

    Checks first, before anything is sent: the file is the one enqueued (SHA-256), the token
    is here. A run directory on this host that holds the job's journal is continued (a
    worker restarted on the same host); otherwise the job begins anew under the derived
    secret, so whatever a dead worker sent replays. ``stop``: see ``engine.run.run_job``
    (a host of several jobs passes each its own ``StopControl.child()``).
    ``allow_token_change``: continue a journal begun with another token (rotated), as
    ``resume --allow-token-change``.
    """
    # Hashing a large file takes a while: off the event loop, where other jobs may be running.
    await anyio.to_thread.run_sync(verify_file, job)
    job = job.with_control_total()
    token = job_token(job, env)
    install_redaction(token)
    run_dir = job_run_dir(job, state_dir)
    settings = job_settings(job, env, run_dir=run_dir)
    base_url = validate_base_url(settings.base_url)
    secret = (
        derive_job_secret(key_secret_bytes, job.identity) if key_secret_bytes is not None else None
    )
    request = RunRequest(
        kind=job.engine_kind,
        input_path=Path(job.file),
        settings=settings,
        label=job.org,
        run_dir=run_dir,
        parameters=job.engine_parameters(),
        job_secret=secret,
        allow_token_change=allow_token_change,
    )
    return await run_job(
        request,
        base_url=base_url,
        ca_bundle=settings.ca_bundle,
        token=token,
        store=store,
        reporter=reporter,
        stop=stop,
    )


def state_root(env: Mapping[str, str]) -> Path:
    """The host's state directory (``FLEXPAY_STATE_DIR`` or the per-user default)."""
    return default_runs_root(env).parent


__all__ = [
    "KEY_SECRET_ENV",
    "BureauJob",
    "bureau_job",
    "job_run_dir",
    "job_settings",
    "job_token",
    "key_secret",
    "run_bureau_job",
    "state_root",
    "verify_file",
]
