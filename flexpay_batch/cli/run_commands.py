"""The commands that run a job: ``onboard``, ``payroll`` and ``resume``.

Each turns its flags into a ``RunRequest`` (``RunOptions`` for the options they share) and
hands it to ``engine.run``; the engine is imported only when a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flexpay_batch.cli.common import (
    CONNECTION,
    PERIOD,
    RUN,
    TOKEN_HELP,
    CaBundle,
    Debug,
    JsonLogs,
    JsonSummary,
    ReadBurst,
    ReadLimit,
    RetryRejected,
    RunOptions,
    Sandbox,
    TokenFile,
    Workers,
    WriteBurst,
    WriteLimit,
    command_group,
    date_option,
    flag,
    option,
    parse_date,
    parse_total,
    with_run_options,
)
from flexpay_batch.core import errors

if TYPE_CHECKING:
    from flexpay_batch.engine.request import RunRequest

commands = command_group()


@commands.command(epilog=TOKEN_HELP)
@with_run_options
def onboard(
    file: Annotated[Path, typer.Argument(help="Onboarding file (.csv or .jsonl).", metavar="FILE")],
    options: RunOptions,
    dry_run: Annotated[
        bool,
        flag(
            "--dry-run",
            "Check the header, every row and the server's pay groups and employment "
            "types (reads only); print what would be sent. No write, no run directory.",
            RUN,
        ),
    ] = False,
) -> int:
    """Create one employee per row of FILE (POST /employees), exactly once.

    Running the same command again continues the same run (its run directory is named
    after the file); `flexpay-batch resume DIR` does the same from the directory.
    """
    from flexpay_batch.jobs.onboarding import SPEC

    request = options.request(SPEC.name, file)
    if dry_run:
        from flexpay_batch.cli.dryrun import show_dry_run

        return show_dry_run(request, json_output=options.json_output)
    return execute(request, json_output=options.json_output)


@commands.command(epilog=TOKEN_HELP)
@with_run_options
def payroll(
    file: Annotated[Path, typer.Argument(help="Payroll file (.csv or .jsonl).", metavar="FILE")],
    pay_group: Annotated[str, option("Pay group id, e.g. pg_weekly.", "ID", PERIOD)],
    period_start: Annotated[str, date_option("First day of the pay period.")],
    period_end: Annotated[str, date_option("Last day of the pay period.")],
    pay_date: Annotated[str, date_option("Pay date.")],
    submit: Annotated[
        bool,
        typer.Option(
            "--submit/--no-submit",
            help="Submit the run once every item is in and the totals agree (--no-submit: "
            "leave it in draft for review).",
            rich_help_panel=PERIOD,
        ),
    ] = True,
    off_cycle: Annotated[
        bool,
        flag(
            "--off-cycle",
            "Create an extra off-cycle run (a correction or bonus) instead of making the "
            "period's regular run equal to FILE.",
            PERIOD,
        ),
    ] = False,
    prune: Annotated[
        bool,
        flag("--prune", "Delete the draft run's items for employees FILE does not have.", PERIOD),
    ] = False,
    expected_total: Annotated[
        str | None, option("Control total the file must add up to.", "AMOUNT", PERIOD)
    ] = None,
    expected_count: Annotated[
        int | None, option("Control count of items the file must hold.", "N", PERIOD)
    ] = None,
    *,
    options: RunOptions,
    sandbox_employees: Annotated[
        Path | None,
        option(
            "With --sandbox: onboarding file whose employees the sandbox starts with.",
            "FILE",
            CONNECTION,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        flag(
            "--dry-run",
            "Check the header, every row, the pay group, the employees and the period's run "
            "on the server (reads only); print what would be sent and whether the run would "
            "be submitted. No write, no run directory.",
            RUN,
        ),
    ] = False,
) -> int:
    """Add one payroll item per row of FILE to a new run, check the totals, then submit."""
    from flexpay_batch.jobs.payroll import SPEC, ControlTotals, PayPeriod, payroll_parameters

    period = PayPeriod(
        pay_group_id=pay_group,
        period_start=parse_date("period-start", period_start),
        period_end=parse_date("period-end", period_end),
        pay_date=parse_date("pay-date", pay_date),
    )
    control = ControlTotals(item_count=expected_count, total=parse_total(expected_total))
    request = options.request(
        SPEC.name,
        file,
        label=f"{pay_group}-{period.period_start.isoformat()}" + ("-offcycle" if off_cycle else ""),
        parameters=payroll_parameters(
            period, submit=submit, control=control, off_cycle=off_cycle, prune=prune
        ),
        sandbox_employees=sandbox_employees,
    )
    if sandbox_employees is not None and not options.sandbox:
        raise errors.UsageError("--sandbox-employees only makes sense with --sandbox")
    if dry_run:
        from flexpay_batch.cli.dryrun import show_dry_run

        return show_dry_run(request, json_output=options.json_output)
    return execute(request, json_output=options.json_output)


@commands.command(epilog=TOKEN_HELP)
def resume(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory to continue.", metavar="RUN_DIR")
    ],
    sandbox: Sandbox = False,
    ca_bundle: CaBundle = None,
    token_file: TokenFile = None,
    retry_rejected: RetryRejected = False,
    allow_token_change: Annotated[
        bool,
        flag(
            "--allow-token-change",
            "Continue with a new token of the same organisation (e.g. after the old one "
            "was revoked); rows already sent replay under their keys.",
            CONNECTION,
        ),
    ] = False,
    workers: Workers = None,
    read_limit: ReadLimit = None,
    read_burst: ReadBurst = None,
    write_limit: WriteLimit = None,
    write_burst: WriteBurst = None,
    json_logs: JsonLogs = False,
    json_output: JsonSummary = False,
    debug: Debug = False,
) -> int:
    """Continue an interrupted run: done rows are skipped, unsettled rows re-sent, same keys.

    Workers and limits default to the run's own; given here they apply to this resume only.
    """
    from flexpay_batch.engine.resume import resume_request

    request = resume_request(
        run_dir,
        sandbox=sandbox,
        ca_bundle=ca_bundle,
        token_file=token_file,
        retry_rejected=retry_rejected,
        json_logs=json_logs,
        allow_token_change=allow_token_change,
        overrides={
            "workers": workers,
            "read_limit": read_limit,
            "read_burst": read_burst,
            "write_limit": write_limit,
            "write_burst": write_burst,
        },
    )
    return execute(request, json_output=json_output)


def execute(request: RunRequest, *, json_output: bool) -> int:
    """Run ``request`` with the progress display (and the sandbox banner) on stderr; with
    ``--json`` print one JSON summary on stdout, even if it stopped."""
    from flexpay_batch.cli.progress import banner_printer, make_reporter
    from flexpay_batch.engine.run import execute_request

    reporter = make_reporter(json_logs=request.json_logs, stream=sys.stderr)
    announce = banner_printer(request.json_logs, sys.stderr)
    if not json_output:
        return execute_request(request, reporter=reporter, announce=announce)
    from flexpay_batch.cli.summary import print_json_summary

    return execute_request(
        request, reporter=reporter, on_summary=print_json_summary, announce=announce
    )
