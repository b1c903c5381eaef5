"""``flexpay-batch run MANIFEST``: every job of a bureau's manifest, in this process.

The command is a thin layer over ``bureau.local``: it reads the environment, checks every
job (``prepare_jobs``; exit 2 naming the job and the key, before anything is sent), opens the
shared limiter store if one is named, runs the jobs with one combined display on stderr and
exits like a single run. ``--json`` prints one JSON object for all jobs on stdout.

Module-level imports stay light: ``flexpay-batch --help`` imports this module.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from flexpay_batch.bureau.outcome import JobOutcome

#: Said by ``run --help``: where each job's token comes from, and what makes a re-run resume.
RUN_EPILOG = (
    "Each job's token comes from the variable its token_env names (or its token_file). "
    "FLEXPAY_BASE_URL and FLEXPAY_CA_BUNDLE apply to every job unless the job sets base_url "
    "or ca_bundle. Running the same manifest again continues every job where it stopped "
    "(its run directory is STATE_DIR/bureau/ORG/JOB_ID, STATE_DIR being FLEXPAY_STATE_DIR or "
    "~/.local/state/flexpay-batch on Linux): rows already done are not sent again. "
    "FLEXPAY_KEY_SECRET (optional here) derives each job's idempotency keys from a "
    "bureau-wide secret, as queue workers do; without it each job keeps the random secret "
    "its journal began with: re-run the manifest on this host to resume."
)


def run(
    manifest: Annotated[
        Path,
        typer.Argument(help="The bureau's manifest (TOML, [[jobs]] tables).", metavar="MANIFEST"),
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Jobs run at the same time, each of another organisation and token.",
            metavar="N",
        ),
    ] = 4,
    limiter_url: Annotated[
        str | None,
        typer.Option(
            help="Share each token's rate limit with every process using this Redis, e.g. "
            "redis://127.0.0.1:6379/0 (a password only via FLEXPAY_LIMITER_URL) "
            "[env FLEXPAY_LIMITER_URL].",
            metavar="URL",
        ),
    ] = None,
    allow_token_change: Annotated[
        bool,
        typer.Option(
            "--allow-token-change",
            help="Continue jobs whose journals began with another token of the same "
            "organisation (rotated or revoked): their idempotency keys still replay.",
        ),
    ] = False,
    json_logs: Annotated[
        bool,
        typer.Option("--json-logs", help="Progress as one JSON object per line on stderr instead."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary of every job on stdout.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show (redacted) tracebacks on errors.")
    ] = False,
) -> int:
    """Run every job of MANIFEST here: organisations in parallel, each token within its limits.

    Jobs of different organisations run at the same time (up to --concurrency); an
    organisation's jobs run one after another in manifest order, and organisations take
    turns. Everything is checked before anything is sent. Exit codes as for one run: 0 all
    done, 1 rows rejected or failed, else the gravest code a job stopped with (3 before 4),
    130 when interrupted (run it again to continue).
    """
    import anyio

    from flexpay_batch.bureau.job import key_secret, state_root
    from flexpay_batch.bureau.local import prepare_jobs
    from flexpay_batch.bureau.outcome import overall_exit_code
    from flexpay_batch.cli.bureau_progress import make_board
    from flexpay_batch.core import errors
    from flexpay_batch.core.settings import environment, load_settings

    # A SIGTERM (a service manager stopping us) while the jobs are checked is a Ctrl-C too:
    # by default it would end the process with no word. The engine installs its own handlers
    # once the jobs start.
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    interrupted = False
    try:
        env = environment()
        settings = load_settings(flags={"limiter_url": limiter_url}, env=env)
        secret = key_secret(env, required=False)
        state_dir = state_root(env)
        jobs = prepare_jobs(manifest, env, state_dir=state_dir)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Interrupted: nothing was written, and a second signal must not turn the message
        # into a traceback or a silent death.
        signal.signal(signal.SIGTERM, signal.SIG_IGN if interrupted else previous_term)
    if interrupted:
        # Hashing large files takes a while; typer would make a Ctrl-C a silent exit 130.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise errors.RunInterrupted(
            "interrupted while checking the manifest's jobs; nothing was sent or written",
            hint=f"Run `flexpay-batch run {shlex.quote(str(manifest))}` again.",
        )
    board = make_board([job.label for job in jobs], sys.stderr, json_logs=json_logs)

    async def run_all() -> tuple[list[JobOutcome], bool]:
        from flexpay_batch.bureau.local import run_local
        from flexpay_batch.engine.limiting import limiter_store

        async with limiter_store(settings) as store:
            return await run_local(
                jobs,
                env=env,
                state_dir=state_dir,
                board=board,
                store=store,
                key_secret=secret,
                concurrency=concurrency,
                allow_token_change=allow_token_change,
            )

    outcomes, interrupted = anyio.run(run_all)
    code = overall_exit_code(outcomes, interrupted=interrupted)
    if json_output:
        print(json.dumps(bureau_json(outcomes, code, interrupted=interrupted)), flush=True)
    if debug:
        _show_tracebacks(outcomes)
    _say_what_next(code, manifest)
    return code


def _show_tracebacks(outcomes: Sequence[JobOutcome]) -> None:
    """``--debug``: each failed job's (redacted) traceback, after the summary table."""
    for outcome in outcomes:
        if outcome.traceback is not None:
            print(f"{outcome.label.describe()}:\n{outcome.traceback}", file=sys.stderr)


def bureau_json(outcomes: Sequence[JobOutcome], code: int, *, interrupted: bool) -> dict[str, Any]:
    """The ``--json`` object: the run's exit code and, per job, its outcome and summary."""
    from flexpay_batch.bureau.manifest import in_manifest_words
    from flexpay_batch.cli.summary import summary_json
    from flexpay_batch.core.states import RowStatus

    jobs = []
    for outcome in outcomes:
        entry: dict[str, Any] = {
            "number": outcome.label.number,
            "org": outcome.label.org,
            "kind": outcome.label.kind,
            "job_id": outcome.job_id,
            "state": outcome.state,
            "exit_code": outcome.exit_code,
            "run_dir": str(outcome.run_dir) if outcome.run_dir is not None else None,
            "counts": {s.value: outcome.counts.get(s.value, 0) for s in RowStatus},
            "error": outcome.error,
        }
        if outcome.summary is not None:
            details = summary_json(outcome.summary)
            for key in ("this_invocation", "elapsed_seconds", "retries", "throttled_429"):
                entry[key] = details[key]
            entry["messages"] = [in_manifest_words(text) for text in details["messages"]]
        jobs.append(entry)
    return {"exit_code": code, "interrupted": interrupted, "jobs": jobs}


def _say_what_next(code: int, manifest: Path) -> None:
    again = f"`flexpay-batch run {shlex.quote(str(manifest))}`"  # pasted into a shell
    if code == 130:
        print(
            f"error: interrupted\n  What was journaled is kept: run {again} again to continue "
            "every job where it stopped.",
            file=sys.stderr,
        )
    elif code > 1:
        print(
            f"error: a job stopped (exit {code}; see the table)\n  Fix what it says, then run "
            f"{again} again: finished jobs and rows are not sent again.",
            file=sys.stderr,
        )


__all__ = ["RUN_EPILOG", "bureau_json", "run"]
