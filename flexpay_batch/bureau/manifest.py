"""A bureau's manifest: the jobs of many organisations, in one TOML file.

::

    manifest = load_manifest(Path("/srv/bureau/week-49.toml"))
    for job in manifest.jobs:
        job.org, job.kind, job.file          # "acme", "onboard", /srv/bureau/acme/new-hires.csv

The format (``[[jobs]]`` tables; unknown keys are refused, paths must be absolute)::

    [[jobs]]
    org = "acme"
    kind = "onboard"                  # onboard | payroll
    file = "/srv/bureau/acme/new-hires.csv"
    token_env = "FLEXPAY_TOKEN_ACME"  # or: token_file = "/etc/flexpay/acme.token"
    # optional: base_url, ca_bundle, workers, read_limit, read_burst, write_limit, write_burst
    # payroll: pay_group, period_start, period_end, pay_date, expected_total, expected_count,
    #          off_cycle, submit, prune

Every error is ``errors.ConfigError`` (exit 2) naming the manifest, the job (its number and
organisation) and the key, so the operator can find the line. Checking that the files and
tokens are really there is a separate step (``bureau.local.prepare_jobs``; for a job queue
without the tokens: the host that enqueues jobs need not hold those the workers hold).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flexpay_batch.core import errors

#: The job kinds a manifest names, and the engine's ``jobs.registry`` kind for each.
ENGINE_KIND: Mapping[str, str] = {"onboard": "onboarding", "payroll": "payroll"}

_ORG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Capitals only: a pasted token (mixed case) is refused here rather than echoed as a
# variable name in "the variable … is not set".
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_PAYROLL_KEYS = (
    "pay_group",
    "period_start",
    "period_end",
    "pay_date",
    "expected_total",
    "expected_count",
    "off_cycle",
    "submit",
    "prune",
)
#: What a job's run says in the command line's words, and the same in the manifest's: a
#: bureau's operator changes the job's [[jobs]] table, not a command's flags.
_ADVICE: tuple[tuple[str, str], ...] = (
    ("run the payroll command with --off-cycle", "set off_cycle = true in its [[jobs]] table"),
    ("run the command with --off-cycle", "set off_cycle = true in its [[jobs]] table"),
    ("run the same payroll command without --no-submit", "remove its submit = false"),
    ("--no-submit", "submit = false"),
    ("--prune", "prune = true"),
    ("resume with --allow-token-change", "run the manifest again with --allow-token-change"),
    ("; or pass --restart to begin a new job", ""),
)


def _absolute(value: Path | None, key: str) -> Path | None:
    if value is not None and not value.is_absolute():
        raise ValueError(f"{key} must be an absolute path, not {str(value)!r}")
    return value


class ManifestJob(BaseModel):
    """One ``[[jobs]]`` table: an organisation's onboarding or payroll file and its token."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    org: str
    kind: Literal["onboard", "payroll"]
    file: Path
    token_env: str | None = None
    token_file: Path | None = None
    base_url: str | None = None
    ca_bundle: Path | None = None
    workers: int | None = Field(default=None, ge=1, le=256)
    read_limit: str | None = None
    read_burst: int | None = Field(default=None, ge=1)
    write_limit: str | None = None
    write_burst: int | None = Field(default=None, ge=1)
    # payroll only
    pay_group: str | None = Field(default=None, min_length=1)
    period_start: date | None = None
    period_end: date | None = None
    pay_date: date | None = None
    expected_total: Decimal | None = None
    expected_count: int | None = Field(default=None, ge=0)
    off_cycle: bool | None = None
    submit: bool | None = None
    #: Delete the run's items of employees the file does not have (``payroll --prune``).
    prune: bool | None = None

    @field_validator("org")
    @classmethod
    def _org_name(cls, value: str) -> str:
        if not _ORG_PATTERN.match(value):
            raise ValueError(
                "org must be 1-64 letters, digits, '.', '_' or '-', beginning with a letter "
                "or digit (it names directories and queue entries)"
            )
        return value

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "token_env must be the NAME of an environment variable, in capitals, digits "
                "and '_' (e.g. FLEXPAY_TOKEN_ACME), never the token itself"
            )
        return value

    @field_validator("file")
    @classmethod
    def _file_absolute(cls, value: Path) -> Path:
        return _absolute(value, "file") or value

    @field_validator("token_file", "ca_bundle")
    @classmethod
    def _paths_absolute(cls, value: Path | None) -> Path | None:
        return _absolute(value, "the path")

    @field_validator("expected_total")
    @classmethod
    def _cents(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (
            not value.is_finite() or value.as_tuple().exponent < -2  # type: ignore[operator]
        ):
            raise ValueError("expected_total must be an amount with at most two decimals")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ManifestJob:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env and token_file")
        payroll_keys = [key for key in _PAYROLL_KEYS if getattr(self, key) is not None]
        if self.kind == "onboard" and payroll_keys:
            raise ValueError(f"{', '.join(payroll_keys)}: only payroll jobs take these keys")
        if self.kind == "payroll":
            missing = [
                key
                for key in ("pay_group", "period_start", "period_end", "pay_date")
                if getattr(self, key) is None
            ]
            if missing:
                raise ValueError(f"a payroll job needs {', '.join(missing)}")
        return self

    @property
    def engine_kind(self) -> str:
        """The ``jobs.registry`` name of this job's kind."""
        return ENGINE_KIND[self.kind]

    def setting_flags(self) -> dict[str, object | None]:
        """The job's own settings, as ``core.settings.load_settings`` takes flags."""
        return {
            "base_url": self.base_url,
            "ca_bundle": self.ca_bundle,
            "workers": self.workers,
            "read_limit": self.read_limit,
            "read_burst": self.read_burst,
            "write_limit": self.write_limit,
            "write_burst": self.write_burst,
        }

    def describe(self, number: int) -> str:
        """``job 3 (acme, payroll)``: how messages name this job."""
        return f"job {number} ({self.org}, {self.kind})"


class Manifest(BaseModel):
    """The whole manifest: at least one job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: tuple[ManifestJob, ...] = Field(min_length=1)


def in_manifest_words(text: str) -> str:
    """``text`` (a message or hint of the engine) with command-line flags put as manifest
    keys: ``--write-limit`` → ``write_limit``, ``with --off-cycle`` → ``off_cycle = true``."""
    for flag, words in _ADVICE:
        text = text.replace(flag, words)
    for key in sorted(ManifestJob.model_fields, key=len, reverse=True):
        text = text.replace("--" + key.replace("_", "-"), key)
    return text


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest at ``path``; ``errors.ConfigError`` on any problem."""
    try:
        # utf-8-sig: a manifest saved by Windows Notepad begins with a byte order mark.
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise errors.ConfigError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(f"manifest {path} cannot be read: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"manifest {path} is not valid TOML: {exc}") from None
    return parse_manifest(data, source=str(path))


def parse_manifest(data: Mapping[str, Any], *, source: str) -> Manifest:
    """Validate manifest ``data`` (parsed TOML); ``source`` names it in errors."""
    shape = _shape_problem(data)
    if shape is not None:
        raise errors.ConfigError(
            f"manifest {source}: {shape}",
            hint="Begin each job with a line [[jobs]] (two brackets): see README "
            "'Running a bureau' or samples/bureau.toml.",
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise errors.ConfigError(
            f"manifest {source}: {_first_problem(exc, data)}",
            hint="Each [[jobs]] table needs org, kind, file (absolute) and one of token_env "
            "or token_file; see README 'Running a bureau'.",
        ) from None


def _shape_problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with the manifest's outline (no ``[[jobs]]`` array), in TOML's words."""
    jobs = data.get("jobs")
    others = sorted(key for key in data if key != "jobs")
    if jobs is None:
        found = f" (found {', '.join(repr(k) for k in others)})" if others else ""
        return f"no [[jobs]] tables{found}"
    if isinstance(jobs, Mapping):
        return "jobs is one [jobs] table; each job must be a [[jobs]] table (two brackets)"
    if others:
        return f"{others[0]}: unknown key at the top level (only [[jobs]] tables belong there)"
    return None


def _first_problem(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """One sentence naming the job and the key of the first validation error."""
    error = exc.errors(include_url=False, include_input=False)[0]
    location = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if location[:1] != ["jobs"] or len(location) < 2 or not isinstance(location[1], int):
        where = ".".join(str(part) for part in location) or "the top level"
        return f"{where}: {message}"
    index = location[1]
    jobs = data.get("jobs")
    org = "?"
    if isinstance(jobs, list) and index < len(jobs) and isinstance(jobs[index], Mapping):
        org = str(jobs[index].get("org", "?"))
    key = ".".join(str(part) for part in location[2:])
    return f"job {index + 1} ({org}): {key + ': ' if key else ''}{message}"


__all__ = [
    "ENGINE_KIND",
    "Manifest",
    "ManifestJob",
    "in_manifest_words",
    "load_manifest",
    "parse_manifest",
]
