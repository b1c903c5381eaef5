"""Where a run's files go by default, and the input fingerprint that names the directory.

::

    run_dir = default_run_dir(request, input_sha256(request.input_path))
    # ~/.local/state/flexpay-batch/runs/onboarding-people-3f9a1c2b   (Linux)

The same command on the same file names the same directory, so running it again resumes;
the directory lives in the user's state directory (``platformdirs``), not under the working
directory, so a cron job started elsewhere finds the same run. ``FLEXPAY_STATE_DIR``
overrides the state directory (tests point it at a temporary one).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from flexpay_batch.core import errors
from flexpay_batch.core.keys import file_sha256
from flexpay_batch.engine.request import SANDBOX, RunRequest
from flexpay_batch.input.readers import require_regular_file

#: Environment variable naming the state directory instead of the platform's default.
STATE_DIR_ENV = "FLEXPAY_STATE_DIR"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$FLEXPAY_STATE_DIR``, else the per-user state directory (``platformdirs``)."""
    environ = os.environ if env is None else env
    override = environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_state_dir("flexpay-batch", appauthor=False))


def default_runs_root(env: Mapping[str, str] | None = None) -> Path:
    """The directory that holds the run directories by default (``flexpay-batch runs`` lists
    it): ``<state dir>/runs``. The one place that says where it is."""
    return state_dir(env) / "runs"


def bureau_runs_root(state: Path) -> Path:
    """Where ``run MANIFEST`` keeps its jobs' run directories under the state directory
    ``state``: ``<state>/bureau``, one folder per organisation (``bureau.job.job_run_dir``)."""
    return state / "bureau"


def default_run_dir(
    request: RunRequest, input_sha256: str, env: Mapping[str, str] | None = None
) -> Path:
    """``<state dir>/runs/[sandbox-]<kind>-<file stem>[-<label>]-<sha8>`` (absolute).

    The same command finds the same directory (and so resumes), except in the sandbox: its
    simulator and all its data vanish when the command ends, so a sandbox journal could only
    ever be continued against a server that has never seen it. Each sandbox invocation gets
    a directory of its own (``-<UTC time>-<random>`` appended).
    """
    parts = [SANDBOX] if request.sandbox else []
    parts += [request.kind, request.input_path.stem]
    if request.label:
        parts.append(request.label)
    parts.append(input_sha256[:8])
    if request.sandbox:
        parts.append(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + secrets.token_hex(2))
    name = "-".join(part.replace(os.sep, "_") for part in parts)
    return default_runs_root(env) / name


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


__all__ = [
    "STATE_DIR_ENV",
    "bureau_runs_root",
    "default_run_dir",
    "default_runs_root",
    "input_sha256",
    "state_dir",
]
