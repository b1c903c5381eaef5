"""Where a run's files go by default, and the input fingerprint that names the directory.

::

    run_dir = default_run_dir(request, input_sha256(request.input_path))
    # .flexpay/runs/onboarding-people-3f9a1c2b

The same command on the same file names the same directory, so running it again resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

from flexpay_batch.core import errors
from flexpay_batch.core.keys import file_sha256
from flexpay_batch.engine.request import SANDBOX, RunRequest


def default_runs_root() -> Path:
    """The directory that holds the run directories by default (``flexpay-batch runs`` lists
    it). The one place that says where it is."""
    return Path(".flexpay") / "runs"


def default_run_dir(request: RunRequest, input_sha256: str) -> Path:
    """``<runs root>/[sandbox-]<kind>-<file stem>[-<label>]-<sha8>`` (``default_runs_root``)."""
    parts = [SANDBOX] if request.sandbox else []
    parts += [request.kind, request.input_path.stem]
    if request.label:
        parts.append(request.label)
    parts.append(input_sha256[:8])
    name = "-".join(part.replace(os.sep, "_") for part in parts)
    return default_runs_root() / name


def input_sha256(path: Path) -> str:
    """The input file's SHA-256 (hex); ``errors.InputFileError`` if it is missing or a dir."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise errors.InputFileError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise errors.InputFileError(f"input file {path} is a directory") from None


__all__ = ["default_run_dir", "default_runs_root", "input_sha256"]
