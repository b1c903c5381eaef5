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
from flexpay_batch.input.readers import require_regular_file


def default_run_dir(request: RunRequest, input_sha256: str) -> Path:
    """``.flexpay/runs/[sandbox-]<kind>-<file stem>[-<label>]-<sha8>`` (relative)."""
    parts = [SANDBOX] if request.sandbox else []
    parts += [request.kind, request.input_path.stem]
    if request.label:
        parts.append(request.label)
    parts.append(input_sha256[:8])
    name = "-".join(part.replace(os.sep, "_") for part in parts)
    return Path(".flexpay") / "runs" / name


def input_sha256(path: Path) -> str:
    """The input file's SHA-256 (hex); ``errors.InputFileError`` if it is missing or is not a
    regular file (a FIFO or device would hang: the input is read more than once)."""
    require_regular_file(path)
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise errors.InputFileError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise errors.InputFileError(f"input file {path} is a directory") from None


__all__ = ["default_run_dir", "input_sha256"]
