"""The commands that read local files only, with no network and no token: ``status``,
``runs`` and ``validate``. Their work is in ``cli.status``, ``cli.runs`` and ``cli.validate``,
imported when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexpay_batch.cli.common import STATE_DIR_HELP, Encoding, command_group

commands = command_group()


@commands.command()
def status(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory to inspect.", metavar="RUN_DIR")
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Where a run stands: running, stopped, incomplete or finished, counts, what is left.

    Incomplete: every row is settled but the job's own work is not (a payroll run left in
    draft, not submitted). Safe while the run is going (reads the journal, probes its lock).
    Exit codes: 0 finished · 1 running, stopped or incomplete · 2 no journal in RUN_DIR.
    """
    from flexpay_batch.cli.status import show_status

    return show_status(run_dir, as_json=json_output)


@commands.command()
def runs(
    root: Annotated[
        Path | None,
        typer.Option(
            help="List the run directories in DIR instead: those directly under it, and "
            "DIR/ORG/* as a bureau keeps them [default: STATE_DIR/runs and "
            f"STATE_DIR/bureau/ORG; {STATE_DIR_HELP}].",
            metavar="DIR",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queue: Annotated[
        str | None,
        typer.Option(
            help="List a bureau's job queue instead (a password comes from FLEXPAY_QUEUE_URL "
            "when it names the same server and database).",
            metavar="URL",
        ),
    ] = None,
) -> int:
    """List the local runs, `run MANIFEST`'s too: started, kind, file, organisation, token,
    state, counts, directory. With --queue, every job of a bureau's queue instead."""
    from flexpay_batch.cli.runs import show_queue_runs, show_runs

    if queue is not None:
        from flexpay_batch.cli.queue import queue_url

        return show_queue_runs(queue_url(queue), as_json=json_output)
    return show_runs(root, as_json=json_output)


@commands.command()
def validate(
    file: Annotated[
        Path, typer.Argument(help="Onboarding or payroll file to check.", metavar="FILE")
    ],
    kind: Annotated[
        str,
        typer.Option(
            help="onboarding or payroll (default: guessed from the columns).", metavar="KIND"
        ),
    ] = "auto",
    encoding: Encoding = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Also write the rejected rows to this CSV (0600).", metavar="FILE"),
    ] = None,
) -> int:
    """Check FILE with no network at all: schema, duplicates and totals. Needs no token."""
    from flexpay_batch.cli.validate import validate_file

    return validate_file(file, kind=kind, encoding=encoding, rejects_path=rejects)
