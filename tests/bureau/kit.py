"""Helpers for the bureau tests: manifests, several organisations on one simulator, journals.

orgs = three_orgs()                                   # Org("acme", token, org_id, prefix)
sim = await make_simulator(tokens=sim_tokens(orgs), limits=...)
path = write_manifest(tmp_path / "bureau.toml", [onboard_job(org, file) for ...])
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flexpay_batch.bureau.job import BureauJob
from flexpay_batch.core.limitspec import LimitSettings
from flexpay_batch.journal.files import JOURNAL_NAME
from flexpay_batch.sim.config import ALL_SCOPES, TokenSpec
from tests.harness import PERIOD_FLAGS, write_onboarding

TomlValue = str | int | bool | date | Path


@dataclass(frozen=True)
class Org:
    """One organisation of the bureau: its name, token (and its variable), simulator org id."""

    name: str
    token: str
    org_id: str
    #: Employees' external ids begin with it, so the ledger's counts (summed over
    #: organisations) still tell the organisations apart.
    prefix: str

    @property
    def token_env(self) -> str:
        return f"FLEXPAY_TOKEN_{self.name.upper()}"


def three_orgs() -> list[Org]:
    """acme, beta and chi, each with a fresh admin token of its own organisation."""
    return [
        Org(name, f"fps_{name}_{secrets.token_hex(12)}", f"org_{name}", prefix)
        for name, prefix in (("acme", "AC"), ("beta", "BE"), ("chi", "CH"))
    ]


#: One prepared job, for the queue's parts that only carry it (``dataclasses.replace`` for more).
A_JOB = BureauJob(
    org="acme",
    kind="onboard",
    engine_kind="onboarding",
    file="/srv/acme.csv",
    file_sha256="0" * 64,
    token_env="FLEXPAY_TOKEN_ACME",
    token_file=None,
)


def sim_tokens(orgs: Sequence[Org]) -> tuple[TokenSpec, ...]:
    """The simulator's tokens: one per organisation, every scope."""
    return tuple(TokenSpec(org.token, ALL_SCOPES, org.org_id, name=org.name) for org in orgs)


def token_env(orgs: Sequence[Org]) -> dict[str, str]:
    """Each organisation's token in its own variable."""
    return {org.token_env: org.token for org in orgs}


def limit_env(limits: LimitSettings) -> dict[str, str]:
    """``FLEXPAY_*`` variables that configure every job's limits to ``limits``."""
    return {
        "FLEXPAY_READ_LIMIT": str(limits.read.rate),
        "FLEXPAY_READ_BURST": str(limits.read.burst),
        "FLEXPAY_WRITE_LIMIT": str(limits.write.rate),
        "FLEXPAY_WRITE_BURST": str(limits.write.burst),
    }


def jobs_env(orgs: Sequence[Org], limits: LimitSettings) -> dict[str, str]:
    """What every job of ``orgs`` needs: its organisation's token, and ``limits``."""
    return {**limit_env(limits), **token_env(orgs)}


def onboard_jobs(folder: Path, orgs: Sequence[Org], rows: int) -> list[dict[str, TomlValue]]:
    """One onboarding job per organisation: ``folder/<org>.csv``, ``rows`` new employees
    whose external ids start with the organisation's prefix."""
    jobs = []
    for org in orgs:
        people = folder / f"{org.name}.csv"
        write_onboarding(people, rows, prefix=org.prefix)
        jobs.append(onboard_job(org, people))
    return jobs


def onboard_job(org: Org, file: Path, **extra: TomlValue) -> dict[str, TomlValue]:
    return {"org": org.name, "kind": "onboard", "file": file, "token_env": org.token_env, **extra}


#: The harness's pay period, as manifest keys.
PERIOD: dict[str, TomlValue] = {
    key.removeprefix("--").replace("-", "_"): value
    for key, value in zip(PERIOD_FLAGS[::2], PERIOD_FLAGS[1::2], strict=True)
}


def payroll_job(org: Org, file: Path, **extra: TomlValue) -> dict[str, TomlValue]:
    period = {k: v if k == "pay_group" else date.fromisoformat(str(v)) for k, v in PERIOD.items()}
    return {
        "org": org.name,
        "kind": "payroll",
        "file": file,
        "token_env": org.token_env,
        **period,
        **extra,
    }


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | date):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(path: Path, jobs: Sequence[Mapping[str, TomlValue]]) -> Path:
    """A manifest of ``jobs`` (``[[jobs]]`` tables of the given keys) at ``path``."""
    tables = [
        "[[jobs]]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in job.items())
        for job in jobs
    ]
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def active_interval(run_dir: Path) -> tuple[float, float]:
    """When a job's rows were on the wire: the first send and the last update (epoch s)."""
    with sqlite3.connect(f"file:{run_dir / JOURNAL_NAME}?mode=ro", uri=True) as db:
        first, last = db.execute("SELECT min(first_sent_at), max(updated_at) FROM rows").fetchone()
    db.close()
    assert first is not None, f"no row of {run_dir} was sent"
    return float(first), float(last)


def journal_secret(run_dir: Path) -> bytes:
    """The job secret a run directory's journal holds."""
    with sqlite3.connect(f"file:{run_dir / JOURNAL_NAME}?mode=ro", uri=True) as db:
        (secret,) = db.execute("SELECT secret FROM job").fetchone()
    db.close()
    return bytes(secret)


def created_per_prefix(effects: Mapping[str, object], prefix: str) -> dict[str, int]:
    """The ledger's creations of employees whose external id begins with ``prefix``."""
    employees = effects["employees"]
    assert isinstance(employees, Mapping)
    counts = employees["by_external_id"]
    assert isinstance(counts, Mapping)
    return {ext: int(n) for ext, n in counts.items() if str(ext).startswith(prefix)}
