"""The ``flexpay-batch`` command line.

Each command is a thin layer: it turns flags into ``Settings`` (flags > environment > TOML),
reads the token from the environment or a token file (never from a flag value), names the job
kind (``jobs.registry``) and its parameters, and hands the request to ``engine.run``. Errors
become one clear sentence and a hint on stderr with the exit code their class carries
(``errors``); a traceback only with ``--debug``, and redacted.

Exit codes: 0 every row done · 1 some rows rejected or failed · 2 usage or configuration
error · 3 aborted (authentication, scope, TLS) · 4 stopped because the API kept failing
(resumable) · 130 interrupted (resumable).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from flexpay_batch.cli import bureau as bureau_cli
from flexpay_batch.core import errors
from flexpay_batch.core.redact import format_exception_redacted, redact_text
from flexpay_batch.core.settings import (
    DEFAULT_BASE_URL,
    SETTING_NAMES,
    Settings,
    environment,
    load_settings,
    load_token,
)
from flexpay_batch.sim.cli import sim as sim_command

app = typer.Typer(
    name="flexpay-batch",
    no_args_is_help=True,
    # Pretty tracebacks show local variables, and a local may hold the token.
    pretty_exceptions_enable=False,
    # Markdown, not rich markup: "[env FLEXPAY_BASE_URL]" in a help text must print as written.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Help panels: the options of a command grouped by what they are about.
CONNECTION = "Connection (token: FLEXPAY_TOKEN or --token-file)"
LIMITS = "Rate limits and workers"
RUN = "Run directory and input"
OUTPUT = "Output"
PERIOD = "Pay period and checks"

#: Said by every command that needs the token: where it comes from, and why never a flag.
TOKEN_HELP = (
    "The API token is read from the FLEXPAY_TOKEN environment variable or from "  # noqa: S105
    "--token-file FILE (never from a flag value: those show in `ps` and shell history)."
)


def _version(value: bool) -> None:
    if value:
        from flexpay_batch import __version__

        print(f"flexpay-batch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Bulk onboarding and payroll through the FlexPay API: at the rate limit, exactly once.

    Exit codes: 0 every row done · 1 some rows rejected or failed · 2 usage, input or
    configuration error · 3 aborted (authentication, scope, TLS) · 4 API unavailable
    (resumable) · 5 a local write refused (disk full, read-only, planted link) · 70 internal
    error · 130 interrupted (resumable). `status`: 0 finished,
    1 rows left (running or stopped), 2 no journal.
    """


app.command(
    "sim",
    help="Run the FlexPay simulator (HTTPS on 127.0.0.1) until Ctrl-C; prints the `export` "
    "lines that point the other commands at it.",
)(sim_command)


def _option(help_text: str, metavar: str, panel: str) -> Any:
    """A valued option: its help, the placeholder its value has in the help, its panel."""
    return typer.Option(help=help_text, metavar=metavar, rich_help_panel=panel)


def _flag(name: str, help_text: str, panel: str) -> Any:
    """A default-off flag of one word (``--sandbox``), never typer's ``--x/--no-x`` pair."""
    return typer.Option(name, help=help_text, rich_help_panel=panel)


# Options shared by the commands that talk to the API. One definition each, reused.
BaseUrl = Annotated[
    str | None,
    typer.Option(
        help="API base URL [env FLEXPAY_BASE_URL].",
        show_default=False,
        metavar="URL",
        rich_help_panel=CONNECTION,
    ),
]
CaBundle = Annotated[
    Path | None, _option("PEM file of CAs to trust [env FLEXPAY_CA_BUNDLE].", "PEM", CONNECTION)
]
TokenFile = Annotated[
    Path | None,
    _option(
        "File holding the API token ('-' for stdin) [env FLEXPAY_TOKEN_FILE]; else FLEXPAY_TOKEN.",
        "FILE",
        CONNECTION,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file [env FLEXPAY_CONFIG].",
        metavar="TOML",
        rich_help_panel=CONNECTION,
    ),
]
RunDir = Annotated[
    Path | None,
    _option(
        "Run directory (journal and outputs) [env FLEXPAY_RUN_DIR; default "
        "<state dir>/runs/KIND-FILE-HASH, the state dir being ~/.local/state/flexpay-batch "
        "on Linux or FLEXPAY_STATE_DIR].",
        "DIR",
        RUN,
    ),
]
Workers = Annotated[int | None, _option("Concurrent workers [default 8].", "N", LIMITS)]
ReadLimit = Annotated[str | None, _option("Sustained read rate, e.g. 300/min.", "N/UNIT", LIMITS)]
ReadBurst = Annotated[int | None, _option("Read burst capacity [default 50].", "N", LIMITS)]
WriteLimit = Annotated[str | None, _option("Sustained write rate, e.g. 100/min.", "N/UNIT", LIMITS)]
WriteBurst = Annotated[int | None, _option("Write burst capacity [default 20].", "N", LIMITS)]
LimiterUrl = Annotated[
    str | None,
    _option(
        "Share each token's rate limit with every process using this Redis, e.g. "
        "redis://127.0.0.1:6379/0 (a password only via FLEXPAY_LIMITER_URL or TOML) "
        "[env FLEXPAY_LIMITER_URL].",
        "URL",
        LIMITS,
    ),
]
Sandbox = Annotated[
    bool,
    _flag(
        "--sandbox",
        "Run against an embedded simulator: nothing real is touched, no token needed.",
        CONNECTION,
    ),
]
JsonLogs = Annotated[
    bool,
    _flag(
        "--json-logs", "Progress as one JSON object per line on stderr instead of a bar.", OUTPUT
    ),
]
JsonSummary = Annotated[
    bool, _flag("--json", "Print one JSON summary of the run on stdout at the end.", OUTPUT)
]
Debug = Annotated[bool, _flag("--debug", "Show (redacted) tracebacks on errors.", OUTPUT)]
Encoding = Annotated[str | None, _option("Input encoding if not UTF-8.", "NAME", RUN)]
Restart = Annotated[
    bool, _flag("--restart", "Begin a new job even if the run directory holds another.", RUN)
]
RetryRejected = Annotated[bool, _flag("--retry-rejected", "Try rows rejected earlier again.", RUN)]


def _settings(params: Mapping[str, object]) -> Settings:
    """Settings from a command's own parameters (``locals()``): those named like a setting
    are its flags, ``config`` names the TOML file. One rule for every command, so a flag
    added to a command cannot be forgotten on its way into the settings."""
    flags = {name: value for name, value in params.items() if name in SETTING_NAMES}
    config = params.get("config")
    return load_settings(
        flags=flags,
        env=environment(),
        toml_path=config if isinstance(config, Path) else None,
    )


@app.command(epilog=TOKEN_HELP)
def onboard(
    file: Annotated[Path, typer.Argument(help="Onboarding file (.csv or .jsonl).", metavar="FILE")],
    sandbox: Sandbox = False,
    base_url: BaseUrl = None,
    ca_bundle: CaBundle = None,
    token_file: TokenFile = None,
    config: ConfigFile = None,
    run_dir: RunDir = None,
    encoding: Encoding = None,
    restart: Restart = False,
    retry_rejected: RetryRejected = False,
    workers: Workers = None,
    read_limit: ReadLimit = None,
    read_burst: ReadBurst = None,
    write_limit: WriteLimit = None,
    write_burst: WriteBurst = None,
    limiter_url: LimiterUrl = None,
    json_logs: JsonLogs = False,
    json_output: JsonSummary = False,
    debug: Debug = False,
    dry_run: Annotated[
        bool,
        _flag(
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
    from flexpay_batch.engine.request import RunRequest
    from flexpay_batch.jobs.onboarding import SPEC

    settings = _settings(locals())
    request = RunRequest(
        kind=SPEC.name,
        input_path=file,
        settings=settings,
        sandbox=sandbox,
        encoding=encoding,
        restart=restart,
        retry_rejected=retry_rejected,
        json_logs=json_logs,
    )
    if dry_run:
        from flexpay_batch.engine.dryrun import dry_run as check_only

        return check_only(request)
    return _execute(request, json_output=json_output)


def _execute(request: Any, *, json_output: bool) -> int:
    """Run ``request``; with ``--json`` print one JSON summary on stdout, even if it stopped."""
    from flexpay_batch.engine.run import execute_request

    if not json_output:
        return execute_request(request)
    from flexpay_batch.cli.summary import print_json_summary

    return execute_request(request, on_summary=print_json_summary)


def _parse_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise errors.UsageError(f"--{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def _parse_total(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        total = Decimal(value)
    except InvalidOperation:
        raise errors.UsageError("--expected-total must be an amount like 1234.56") from None
    if not total.is_finite() or total.as_tuple().exponent < -2:  # type: ignore[operator]
        raise errors.UsageError("--expected-total must have at most two decimal places")
    return total


def _date_option(text: str) -> Any:
    return _option(text, "YYYY-MM-DD", PERIOD)


@app.command(epilog=TOKEN_HELP)
def payroll(
    file: Annotated[Path, typer.Argument(help="Payroll file (.csv or .jsonl).", metavar="FILE")],
    pay_group: Annotated[str, _option("Pay group id, e.g. pg_weekly.", "ID", PERIOD)],
    period_start: Annotated[str, _date_option("First day of the pay period.")],
    period_end: Annotated[str, _date_option("Last day of the pay period.")],
    pay_date: Annotated[str, _date_option("Pay date.")],
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
        _flag(
            "--off-cycle",
            "Create an extra off-cycle run (a correction or bonus) instead of making the "
            "period's regular run equal to FILE.",
            PERIOD,
        ),
    ] = False,
    prune: Annotated[
        bool,
        _flag("--prune", "Delete the draft run's items for employees FILE does not have.", PERIOD),
    ] = False,
    expected_total: Annotated[
        str | None, _option("Control total the file must add up to.", "AMOUNT", PERIOD)
    ] = None,
    expected_count: Annotated[
        int | None, _option("Control count of items the file must hold.", "N", PERIOD)
    ] = None,
    sandbox: Sandbox = False,
    sandbox_employees: Annotated[
        Path | None,
        _option(
            "With --sandbox: onboarding file whose employees the sandbox starts with.",
            "FILE",
            CONNECTION,
        ),
    ] = None,
    base_url: BaseUrl = None,
    ca_bundle: CaBundle = None,
    token_file: TokenFile = None,
    config: ConfigFile = None,
    run_dir: RunDir = None,
    encoding: Encoding = None,
    restart: Restart = False,
    retry_rejected: RetryRejected = False,
    workers: Workers = None,
    read_limit: ReadLimit = None,
    read_burst: ReadBurst = None,
    write_limit: WriteLimit = None,
    write_burst: WriteBurst = None,
    limiter_url: LimiterUrl = None,
    json_logs: JsonLogs = False,
    json_output: JsonSummary = False,
    debug: Debug = False,
) -> int:
    """Add one payroll item per row of FILE to a new run, check the totals, then submit."""
    from flexpay_batch.engine.request import RunRequest
    from flexpay_batch.jobs.payroll import SPEC, ControlTotals, PayPeriod, payroll_parameters

    period = PayPeriod(
        pay_group_id=pay_group,
        period_start=_parse_date("period-start", period_start),
        period_end=_parse_date("period-end", period_end),
        pay_date=_parse_date("pay-date", pay_date),
    )
    control = ControlTotals(item_count=expected_count, total=_parse_total(expected_total))
    settings = _settings(locals())
    request = RunRequest(
        kind=SPEC.name,
        input_path=file,
        settings=settings,
        sandbox=sandbox,
        encoding=encoding,
        restart=restart,
        retry_rejected=retry_rejected,
        json_logs=json_logs,
        label=f"{pay_group}-{period.period_start.isoformat()}" + ("-offcycle" if off_cycle else ""),
        parameters=payroll_parameters(
            period, submit=submit, control=control, off_cycle=off_cycle, prune=prune
        ),
        sandbox_employees=sandbox_employees,
    )
    if sandbox_employees is not None and not sandbox:
        raise errors.UsageError("--sandbox-employees only makes sense with --sandbox")
    return _execute(request, json_output=json_output)


@app.command(epilog=TOKEN_HELP)
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
        _flag(
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
    return _execute(request, json_output=json_output)


@app.command()
def status(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory to inspect.", metavar="RUN_DIR")
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Where a run stands: running, stopped or finished, counts per state, what is left.

    Safe while the run is going (reads the journal, probes its lock). Exit codes: 0
    finished · 1 rows left (running or stopped) · 2 no journal in RUN_DIR.
    """
    from flexpay_batch.cli.status import show_status

    return show_status(run_dir, as_json=json_output)


@app.command()
def runs(
    root: Annotated[
        Path | None,
        typer.Option(
            help="Directory holding the run directories [default: <state dir>/runs, the "
            "state dir being ~/.local/state/flexpay-batch on Linux or FLEXPAY_STATE_DIR].",
            metavar="DIR",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """List the local runs: kind, file, token, started, state, counts, directory."""
    from flexpay_batch.cli.runs import show_runs
    from flexpay_batch.engine.rundir import default_runs_root

    return show_runs(root or default_runs_root(), as_json=json_output)


@app.command()
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


@app.command(epilog=TOKEN_HELP)
def paystubs(
    run_id: Annotated[
        str, typer.Argument(help="The submitted payroll run's id.", metavar="RUN_ID")
    ],
    out: Annotated[Path, _option("Output file (.csv or .jsonl), created 0600.", "FILE", OUTPUT)],
    force: Annotated[bool, _flag("--force", "Overwrite --out if it exists.", OUTPUT)] = False,
    base_url: BaseUrl = None,
    ca_bundle: CaBundle = None,
    token_file: TokenFile = None,
    config: ConfigFile = None,
    read_limit: ReadLimit = None,
    read_burst: ReadBurst = None,
    debug: Debug = False,
) -> int:
    """Export a submitted run's paystubs (paginated reads) to CSV or JSONL."""
    from flexpay_batch.jobs.paystubs import export_paystubs

    if out.exists() and not force:
        raise errors.UsageError(
            f"{out} already exists", hint="Pass --force to overwrite it, or choose another --out."
        )
    settings = _settings(locals())
    token = load_token(settings.token_file, environment())
    import anyio  # only this command runs an event loop itself; start-up stays cheap

    count = anyio.run(export_paystubs, settings, token, run_id, out)
    print(f"wrote {count} paystubs to {out}")
    return 0


@app.command(epilog=TOKEN_HELP)
def bench(
    base_url: BaseUrl = None,
    ca_bundle: CaBundle = None,
    token_file: TokenFile = None,
    requests: Annotated[
        int, typer.Option(help="Requests to send in total (bounded).", metavar="N")
    ] = 300,
    kind: Annotated[
        str | None,
        typer.Option(
            help="read, write or mixed [default: mixed in the sandbox, else read].",
            metavar="KIND",
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Do not ask before sending writes (they create draft payroll runs) to a "
            "real base URL.",
        ),
    ] = False,
    read_limit: ReadLimit = None,
    read_burst: ReadBurst = None,
    write_limit: WriteLimit = None,
    write_burst: WriteBurst = None,
    limiter_url: LimiterUrl = None,
    workers: Workers = None,
    debug: Debug = False,
) -> int:
    """Measure achieved against allowed rates, 429s and latency (default: the sandbox)."""
    from flexpay_batch.cli.bench import run_bench

    settings = _settings(locals())
    # The sandbox unless a base URL was configured (flag, environment or TOML).
    use_sandbox = base_url is None and settings.base_url == DEFAULT_BASE_URL
    # Writes create objects; against a real organisation they are sent only when asked for.
    chosen = kind or ("mixed" if use_sandbox else "read")
    if chosen != "read" and not use_sandbox and not yes:
        _confirm_writes(settings.base_url, requests, chosen)
    return run_bench(settings, requests=requests, kind=chosen, use_sandbox=use_sandbox)


app.command("run", epilog=bureau_cli.RUN_EPILOG)(bureau_cli.run)


def _confirm_writes(base_url: str, requests: int, kind: str) -> None:
    """Ask before a bench creates objects in a real organisation; refuse if nobody can answer."""
    writes = requests if kind == "write" else (requests + 3) // 4
    question = (
        f"bench --kind {kind} sends about {writes} writes to {base_url}: each creates a draft "
        "payroll run there. Continue?"
    )
    if not sys.stdin.isatty():
        raise errors.UsageError(
            f"bench --kind {kind} against {base_url} creates draft payroll runs there",
            hint="Pass --yes if that is what you want, or use --kind read.",
        )
    if not typer.confirm(question, default=False, err=True):
        raise errors.UsageError("bench cancelled; nothing was sent")


# typer >= 0.20 runs commands on its own vendored copy of click, whose exceptions are not
# click's: a usage error (unknown option, missing argument) must still be exit 2, not 70.
_CLICK_EXIT: tuple[type[Any], ...] = (click.exceptions.Exit, typer.Exit)
_CLICK_ABORT: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
_CLICK_ERRORS: tuple[type[Any], ...] = (click.ClickException,)
try:
    from typer._click.exceptions import ClickException as _VendoredClickException

    _CLICK_ERRORS += (_VendoredClickException,)
except ImportError:  # a typer that uses click itself
    pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command, map errors to one message and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="flexpay-batch", standalone_mode=False)
    except _CLICK_EXIT as exc:
        code = exc.exit_code
    except _CLICK_ABORT:
        _say(_INTERRUPTED)
        code = 130
    except _CLICK_ERRORS as exc:
        exc.show()
        code = 2
    except errors.FlexPayBatchError as exc:
        _show_error(exc, debug=debug)
        code = exc.exit_code
    except KeyboardInterrupt:
        _say(_INTERRUPTED)
        code = 130
    except Exception as exc:  # an unexpected bug: still never print a raw traceback
        code = _unexpected(exc, debug=debug)
    if argv is None:
        # The process's outcome is decided and reported: a Ctrl-C now (in interpreter
        # teardown Python puts SIGINT back to its default action) would only turn that exit
        # code into a silent death by signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code if isinstance(code, int) else 0)


def _unexpected(exc: Exception, *, debug: bool) -> int:
    """Report an exception no command handled; return the exit code (5 or 70)."""
    if isinstance(exc, OSError | sqlite3.Error) and errors.is_local_fault(exc):
        # This machine refused a write (disk full, read-only, a planted symlink): a fault the
        # user can fix, so one sentence and exit 5, never "internal error" 70.
        fault = errors.local_fault(exc)
        _show_error(fault, debug=debug)
        return fault.exit_code
    _say(f"error: internal error ({type(exc).__name__}); re-run with --debug for details")
    if debug:
        _say(format_exception_redacted(exc))
    return 70


def _show_error(exc: errors.FlexPayBatchError, *, debug: bool) -> None:
    _say(f"error: {redact_text(exc.message)}")
    if exc.hint:
        _say(f"  {exc.hint}")
    if debug:
        _say(format_exception_redacted(exc))


#: Ctrl-C outside the row pipeline (which says more itself): start-up, pre-flight, finish.
_INTERRUPTED = (
    "error: interrupted\n"
    "  What was journaled is kept: continue a run with `flexpay-batch resume RUN_DIR` "
    "or the same command."
)


def _say(text: str) -> None:
    print(text, file=sys.stderr)
