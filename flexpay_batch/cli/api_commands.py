"""The commands that talk to the API outside a job run: ``paystubs`` (export a submitted
run's paystubs) and ``bench`` (achieved against allowed rates). Their work is in
``jobs.paystubs`` and ``cli.bench``, imported when a command runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from flexpay_batch.cli.common import (
    OUTPUT,
    TOKEN_HELP,
    BaseUrl,
    CaBundle,
    ConfigFile,
    Debug,
    LimiterUrl,
    ReadBurst,
    ReadLimit,
    TokenFile,
    Workers,
    WriteBurst,
    WriteLimit,
    command_group,
    flag,
    option,
    settings_from,
)
from flexpay_batch.core import errors
from flexpay_batch.core.settings import DEFAULT_BASE_URL, environment, load_token

commands = command_group()


@commands.command(epilog=TOKEN_HELP)
def paystubs(
    run_id: Annotated[
        str, typer.Argument(help="The submitted payroll run's id.", metavar="RUN_ID")
    ],
    out: Annotated[Path, option("Output file (.csv or .jsonl), created 0600.", "FILE", OUTPUT)],
    force: Annotated[bool, flag("--force", "Overwrite --out if it exists.", OUTPUT)] = False,
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
    settings = settings_from(locals())
    token = load_token(settings.token_file, environment())
    import anyio  # only this command runs an event loop itself; start-up stays cheap

    count = anyio.run(export_paystubs, settings, token, run_id, out)
    print(f"wrote {count} paystubs to {out}")
    return 0


@commands.command(epilog=TOKEN_HELP)
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

    settings = settings_from(locals())
    # The sandbox unless a base URL was configured (flag, environment or TOML).
    use_sandbox = base_url is None and settings.base_url == DEFAULT_BASE_URL
    # Writes create objects; against a real organisation they are sent only when asked for.
    chosen = kind or ("mixed" if use_sandbox else "read")
    if chosen != "read" and not use_sandbox and not yes:
        _confirm_writes(settings.base_url, requests, chosen)
    return run_bench(settings, requests=requests, kind=chosen, use_sandbox=use_sandbox)


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
