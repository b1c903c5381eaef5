"""The ``flexpay-batch`` command line: the root app, its command modules and ``main``.

Each command is a thin layer: it turns flags into ``Settings`` (flags > environment > TOML),
reads the token from the environment or a token file (never from a flag value), names the job
kind (``jobs.registry``) and its parameters, and hands the request to ``engine.run``. Errors
become one clear sentence and a hint on stderr with the exit code their class carries
(``errors``); a traceback only with ``--debug``, and redacted.

The commands live in one module per group (``COMMAND_GROUPS``); options they share in
``cli.common``.

Exit codes: 0 every row done · 1 some rows rejected or failed · 2 usage or configuration
error · 3 aborted (authentication, scope, TLS) · 4 stopped because the API kept failing
(resumable) · 130 interrupted (resumable).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from typing import Annotated, Any

import typer

from flexpay_batch.cli import api_commands, local_commands, queue, run_commands
from flexpay_batch.cli import bureau as bureau_cli
from flexpay_batch.cli.help import CommandGroup
from flexpay_batch.core import errors
from flexpay_batch.core.redact import format_exception_redacted, redact_text
from flexpay_batch.sim.cli import sim as sim_command

app = CommandGroup(
    name="flexpay-batch",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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
    error · 130 interrupted (resumable). `status`: 0 finished, 1 not finished (running,
    stopped, or a payroll run left in draft), 2 no journal.
    """


app.command(
    "sim",
    help="Run the FlexPay simulator (HTTPS on 127.0.0.1) until Ctrl-C; prints the `export` "
    "lines that point the other commands at it.",
)(sim_command)

#: The command modules, in the order ``--help`` lists them. Each holds a ``commands`` typer
#: app (``cli.common.command_group()``) whose commands join the root's; a new group of
#: commands is a new module and one entry here. A command module stays light to import:
#: ``--help`` imports them all.
COMMAND_GROUPS: tuple[typer.Typer, ...] = (
    run_commands.commands,  # onboard, payroll, resume
    local_commands.commands,  # status, runs, validate
    api_commands.commands,  # paystubs, bench
    queue.commands,  # enqueue, worker (a bureau on a job queue)
)
for _group in COMMAND_GROUPS:
    app.add_typer(_group)
# `run MANIFEST` (the bureau): its own options, registered as one command.
app.command("run", epilog=bureau_cli.RUN_EPILOG)(bureau_cli.run)


def _click_error() -> type[Exception]:
    """The base class of usage errors of the click that typer runs commands on.

    typer >= 0.20 runs commands on its own vendored copy of click, whose exceptions are not
    click's: a usage error (unknown option, missing argument) must still be exit 2, not 70.
    Only an older typer, which runs on click itself, needs click imported (about a fifth of
    ``--help``'s start-up otherwise, for nothing)."""
    try:
        from typer._click.exceptions import ClickException as vendored
    except ImportError:  # a typer that uses click itself
        from click import ClickException

        return ClickException
    return vendored


# typer.Exit and typer.Abort are what either click raises: click's own classes in an older
# typer (re-exported), typer's in one that vendors click (which has none of its own).
_CLICK_EXIT: tuple[type[Any], ...] = (typer.Exit,)
_CLICK_ABORT: tuple[type[BaseException], ...] = (typer.Abort,)
_CLICK_ERRORS: tuple[type[Any], ...] = (_click_error(),)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command, map errors to one message and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Inside the try: building the command takes a moment in which a Ctrl-C lands too.
        command = typer.main.get_command(app)
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
