"""Check an input file's header against its job kind before any row is read or sent.

::

    check_header(KINDS["onboarding"], path, encoding=None)   # errors.InputFileError (exit 2)

A renamed column would otherwise reject every row one by one (and, for a payroll, leave an
empty draft run on the server); one whole-file error that names the column, suggests the
nearest name in the header and recognises a file of the other kind is what the operator
needs. CSV only: a JSONL object names its own keys row by row, so a key missing from one row
is that row's problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from flexpay_batch.core import errors
from flexpay_batch.input.readers import read_columns
from flexpay_batch.jobs.base import JobSpec
from flexpay_batch.jobs.registry import KINDS


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def command_for(spec: JobSpec) -> str:
    """The ``flexpay-batch`` command that runs ``spec``'s kind."""
    return spec.command or spec.name


def required_columns(spec: JobSpec) -> tuple[str, ...]:
    """Columns every file of this kind must have, in the kind's usual column order."""
    required = {name for name, field in spec.model.model_fields.items() if field.is_required()}
    return tuple(name for name in spec.columns if name in required)


def missing_columns(spec: JobSpec, header: Sequence[str]) -> list[str]:
    """What ``header`` lacks for ``spec``: each required column, and the reference columns
    as one ``a or b`` entry when none of them is there."""
    present = set(header)
    missing = [name for name in required_columns(spec) if name not in present]
    references = spec.reference_columns
    if not present.intersection(references) and not set(references) <= set(missing):
        missing.insert(0, " or ".join(references))
    return missing


def check_header(spec: JobSpec, path: Path, *, encoding: str | None) -> None:
    """Raise ``errors.InputFileError`` if ``path``'s header cannot serve ``spec``'s kind."""
    header = read_columns(path, encoding=encoding)
    if header is None:
        return
    missing = missing_columns(spec, header)
    if not missing:
        return
    for other in KINDS.values():
        if other is not spec and not missing_columns(other, header):
            raise errors.InputFileError(
                f"{path} looks like {_a(other.name)} file, not {_a(spec.name)} file: its "
                f"header has no {missing[0]} column",
                hint=f"Nothing was sent. For {_a(other.name)} file use "
                f"`flexpay-batch {command_for(other)}`.",
            )
    unknown = [name for name in header if name not in spec.columns]
    hints = []
    for name in missing:
        for wanted in name.split(" or "):
            near = difflib.get_close_matches(wanted, unknown, n=1, cutoff=0.5)
            if near:
                hints.append(f"is {near[0]!r} meant to be {wanted!r}?")
                break
        else:
            # No similar spelling, but one unused column for one missing one: a rename.
            if len(missing) == 1 and len(unknown) == 1:
                hints.append(f"is {unknown[0]!r} meant to be {name.split(' or ')[0]!r}?")
    hint = " ".join(hints) or f"A {spec.name} file's columns: {', '.join(spec.columns)}."
    plural = "s" if len(missing) > 1 else ""
    raise errors.InputFileError(
        f"{path}: the header lacks the required {spec.name} column{plural} {', '.join(missing)}",
        hint=f"Nothing was sent. Rename the column in the header: {hint}"
        if hints
        else f"Nothing was sent. {hint}",
    )


__all__ = ["check_header", "command_for", "missing_columns", "required_columns"]
