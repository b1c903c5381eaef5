"""What the command modules share: help panels, option helpers, the options every command
that runs a job takes (``RunOptions``), settings from flags, and date and amount parsing.

A command module is light to import (``flexpay-batch --help`` builds every command): the engine,
the jobs and the network stack are imported inside the command functions, not here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from flexpay_batch.cli.help import CommandGroup
from flexpay_batch.core import errors
from flexpay_batch.core.settings import SETTING_NAMES, Settings, environment, load_settings

if TYPE_CHECKING:
    from flexpay_batch.engine.request import RunRequest

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


def command_group() -> typer.Typer:
    """A typer app holding one module's commands; ``cli.app`` adds its commands to the root.

    Plain help with option panels (``cli.help``).
    """
    return CommandGroup()


def option(help_text: str, metavar: str, panel: str) -> Any:
    """A valued option: its help, the placeholder its value has in the help, its panel."""
    return typer.Option(help=help_text, metavar=metavar, rich_help_panel=panel)


def flag(name: str, help_text: str, panel: str) -> Any:
    """A default-off flag of one word (``--sandbox``), never typer's ``--x/--no-x`` pair."""
    return typer.Option(name, help=help_text, rich_help_panel=panel)


def date_option(text: str) -> Any:
    """A required pay-period date, shown as ``YYYY-MM-DD`` (parsed by ``parse_date``)."""
    return option(text, "YYYY-MM-DD", PERIOD)


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
    Path | None, option("PEM file of CAs to trust [env FLEXPAY_CA_BUNDLE].", "PEM", CONNECTION)
]
TokenFile = Annotated[
    Path | None,
    option(
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
#: Where STATE_DIR in a help text is. Never "<state dir>": the help is rendered as markdown,
#: which takes anything in angle brackets for an HTML tag and drops it.
STATE_DIR_HELP = "STATE_DIR is FLEXPAY_STATE_DIR if set, else ~/.local/state/flexpay-batch on Linux"
RunDir = Annotated[
    Path | None,
    option(
        "Run directory (journal and outputs) [env FLEXPAY_RUN_DIR; default "
        f"STATE_DIR/runs/KIND-FILE-HASH; {STATE_DIR_HELP}].",
        "DIR",
        RUN,
    ),
]
Workers = Annotated[int | None, option("Concurrent workers [default 8].", "N", LIMITS)]
ReadLimit = Annotated[str | None, option("Sustained read rate, e.g. 300/min.", "N/UNIT", LIMITS)]
ReadBurst = Annotated[int | None, option("Read burst capacity [default 50].", "N", LIMITS)]
WriteLimit = Annotated[str | None, option("Sustained write rate, e.g. 100/min.", "N/UNIT", LIMITS)]
WriteBurst = Annotated[int | None, option("Write burst capacity [default 20].", "N", LIMITS)]
LimiterUrl = Annotated[
    str | None,
    option(
        "Share each token's rate limit with every process using this Redis, e.g. "
        "redis://127.0.0.1:6379/0 (a password only via FLEXPAY_LIMITER_URL or TOML) "
        "[env FLEXPAY_LIMITER_URL].",
        "URL",
        LIMITS,
    ),
]
Sandbox = Annotated[
    bool,
    flag(
        "--sandbox",
        "Run against an embedded simulator: nothing real is touched, no token needed.",
        CONNECTION,
    ),
]
JsonLogs = Annotated[
    bool,
    flag("--json-logs", "Progress as one JSON object per line on stderr instead of a bar.", OUTPUT),
]
JsonSummary = Annotated[
    bool, flag("--json", "Print one JSON summary of the run on stdout at the end.", OUTPUT)
]
Debug = Annotated[bool, flag("--debug", "Show (redacted) tracebacks on errors.", OUTPUT)]
Encoding = Annotated[str | None, option("Input encoding if not UTF-8.", "NAME", RUN)]
Restart = Annotated[
    bool, flag("--restart", "Begin a new job even if the run directory holds another.", RUN)
]
RetryRejected = Annotated[bool, flag("--retry-rejected", "Try rows rejected earlier again.", RUN)]


def settings_from(params: Mapping[str, object]) -> Settings:
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


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of every command that runs a job from a file (``onboard``, ``payroll``).

    Declared once, here: a command takes one parameter ``options: RunOptions`` and
    ``with_run_options`` shows typer these fields in its place (same flags, help and panels)::

        @commands.command()
        @with_run_options
        def onboard(file: ..., options: RunOptions, dry_run: ... = False) -> int:
            request = options.request("onboarding", file)
    """

    sandbox: Sandbox = False
    base_url: BaseUrl = None
    ca_bundle: CaBundle = None
    token_file: TokenFile = None
    config: ConfigFile = None
    run_dir: RunDir = None
    encoding: Encoding = None
    restart: Restart = False
    retry_rejected: RetryRejected = False
    workers: Workers = None
    read_limit: ReadLimit = None
    read_burst: ReadBurst = None
    write_limit: WriteLimit = None
    write_burst: WriteBurst = None
    limiter_url: LimiterUrl = None
    json_logs: JsonLogs = False
    json_output: JsonSummary = False
    debug: Debug = False

    def settings(self) -> Settings:
        """The run's settings: these flags over the environment over the TOML file."""
        return settings_from({item.name: getattr(self, item.name) for item in fields(self)})

    def request(self, kind: str, input_path: Path, **extra: Any) -> RunRequest:
        """The engine's request to run job ``kind`` on ``input_path``; ``extra`` are the
        command's own ``RunRequest`` fields (label, parameters, ...)."""
        from flexpay_batch.engine.request import RunRequest

        return RunRequest(
            kind=kind,
            input_path=input_path,
            settings=self.settings(),
            sandbox=self.sandbox,
            encoding=self.encoding,
            restart=self.restart,
            retry_rejected=self.retry_rejected,
            json_logs=self.json_logs,
            **extra,
        )


def with_run_options(command: Callable[..., int]) -> Callable[..., int]:
    """Show typer ``RunOptions``' fields where ``command`` has its ``options`` parameter;
    call ``command`` with them gathered into one ``RunOptions``."""
    hints = get_type_hints(RunOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            item.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=item.default,
            annotation=hints[item.name],
        )
        for item in fields(RunOptions)
    ]
    params: list[inspect.Parameter] = []
    for param in inspect.signature(command, eval_str=True).parameters.values():
        if param.name == "options":
            params.extend(shared)
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> int:
        options = RunOptions(**{item.name: kwargs.pop(item.name) for item in fields(RunOptions)})
        return command(**kwargs, options=options)

    wrapper.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {param.name: param.annotation for param in params}
    return wrapper


def parse_date(name: str, value: str) -> date:
    """``value`` of option ``--name`` as a date; a usage error naming the option if it is not."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise errors.UsageError(f"--{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def parse_total(value: str | None) -> Decimal | None:
    """``--expected-total`` as an amount of at most two decimal places (None if not given)."""
    if value is None:
        return None
    try:
        total = Decimal(value)
    except InvalidOperation:
        raise errors.UsageError("--expected-total must be an amount like 1234.56") from None
    if not total.is_finite() or total.as_tuple().exponent < -2:  # type: ignore[operator]
        raise errors.UsageError("--expected-total must have at most two decimal places")
    return total
