"""``resume RUN_DIR``: the original request, rebuilt from the run directory's journal.

::

    request = resume_request(run_dir, sandbox=False, ca_bundle=None, token_file=None,
                             retry_rejected=False, json_logs=False)
    execute_request(request)

The job itself is rebuilt from its stored parameters by its kind (``jobs.registry``) when the
run opens the journal, the same way as for a fresh run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flexpay_batch.core.settings import (
    DEFAULT_BASE_URL,
    environment,
    override_settings,
    settings_from_journal,
)
from flexpay_batch.engine.request import SANDBOX, RunRequest
from flexpay_batch.journal.status import status_snapshot


def resume_request(
    run_dir: Path,
    *,
    sandbox: bool,
    ca_bundle: Path | None,
    token_file: Path | None,
    retry_rejected: bool,
    json_logs: bool,
    allow_token_change: bool = False,
    overrides: Mapping[str, object | None] | None = None,
) -> RunRequest:
    """Rebuild the original request from the journal of ``run_dir``.

    Settings and job parameters come from the journal; the flags here are those a resume may
    set, and ``overrides`` (flags named like settings, None when not given) may change the
    workers and limits for this invocation (``RESUME_SETTINGS``). A job begun in the sandbox
    continues in the sandbox.
    """
    snapshot = status_snapshot(run_dir)
    job = snapshot.job
    config: dict[str, Any] = dict(job.config)
    was_sandbox = job.base_url == SANDBOX
    if was_sandbox != sandbox and was_sandbox:
        sandbox = True
    stored = override_settings(settings_from_journal(config), overrides or {})
    settings = replace(
        stored,
        base_url=DEFAULT_BASE_URL if was_sandbox else job.base_url,
        ca_bundle=ca_bundle or stored.ca_bundle,
        token_file=token_file,
        # The journal keeps the URL without its password; the environment supplies it again.
        limiter_url=environment().get("FLEXPAY_LIMITER_URL") or stored.limiter_url,
    )
    parameters: dict[str, Any] = dict(config.get("job") or {})
    return RunRequest(
        kind=job.kind,
        input_path=Path(job.input_path),
        settings=settings,
        sandbox=sandbox,
        encoding=config.get("encoding"),
        retry_rejected=retry_rejected,
        json_logs=json_logs,
        run_dir=run_dir,
        parameters=parameters,
        allow_token_change=allow_token_change,
    )


__all__ = ["resume_request"]
