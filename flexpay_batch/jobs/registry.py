"""The job kinds: the one place a new kind is added, and the one list everything else asks.

::

    spec = job_spec("payroll")          # errors.UsageError naming the known kinds if unknown
    job = spec.build(parameters, JobContext(meta=meta))
    [spec.name for spec in KINDS.values()]   # ["onboarding", "payroll"]

The command line, ``validate``, the engine (build, resume, results.csv, report.json) all look a
kind up here; none of them spells a kind's name, model or columns itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from flexpay_batch.core import errors
from flexpay_batch.jobs import onboarding, payroll
from flexpay_batch.jobs.base import JobSpec

KINDS: Final[Mapping[str, JobSpec]] = MappingProxyType(
    {spec.name: spec for spec in (onboarding.SPEC, payroll.SPEC)}
)
"""Every job kind by name, in the order they are offered."""

#: The kind a file is taken for when no kind's marker columns are in its header.
DEFAULT_KIND: Final = onboarding.SPEC.name


def job_spec(name: str) -> JobSpec:
    """The kind called ``name``; ``errors.UsageError`` (exit 2) naming the known ones if none."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(KINDS)
        raise errors.UsageError(f"unknown job kind {name!r} (known: {known})") from None


def guess_kind(columns: Iterable[str]) -> JobSpec:
    """The first kind whose marker columns the header holds, else ``DEFAULT_KIND``."""
    header = frozenset(columns)
    for spec in KINDS.values():
        if spec.marker_columns & header:
            return spec
    return KINDS[DEFAULT_KIND]


__all__ = ["DEFAULT_KIND", "KINDS", "guess_kind", "job_spec"]
