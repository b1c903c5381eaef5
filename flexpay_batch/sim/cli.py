"""``flexpay-batch sim``: run the simulator standalone until Ctrl-C (or SIGTERM).

The main CLI mounts ``sim`` as a command; ``python -m flexpay_batch.sim`` runs it alone. It
prints the base URL, the CA bundle path, the preset tokens and the admin secret (sandbox
values, not secrets worth hiding), or one JSON object with ``--json`` for scripts. The admin
secret comes from ``FLEXPAY_SIM_ADMIN_SECRET`` when set (never from argv), else it is random.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, LimitSettings, Rate

if TYPE_CHECKING:
    from flexpay_batch.sim.config import ResetStyle, SimConfig
    from flexpay_batch.sim.server import Simulator

ADMIN_SECRET_ENV = "FLEXPAY_SIM_ADMIN_SECRET"  # noqa: S105  # a variable name, not a secret


def parse_rate(text: str) -> Rate:
    """A typer-friendly ``Rate.parse``: a bad rate is a usage error naming the value."""
    try:
        return Rate.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _limits(read: str, read_burst: int, write: str, write_burst: int) -> LimitSettings:
    try:
        return LimitSettings(
            read=ClassLimits(parse_rate(read), read_burst),
            write=ClassLimits(parse_rate(write), write_burst),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _enforced(what: str) -> str:
    """Help of an --enforced-* option: what the server really enforces, not what it says."""
    return f"Really enforce this {what} (stricter than advertised)."


def sim(
    port: Annotated[int, typer.Option(help="TCP port (0: pick a free one).")] = 8443,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    read_limit: Annotated[str, typer.Option(help="Sustained reads, e.g. 300/min or 5/s.")] = str(
        DEFAULT_LIMITS.read.rate
    ),
    read_burst: Annotated[
        int, typer.Option(help="Read burst capacity.")
    ] = DEFAULT_LIMITS.read.burst,
    write_limit: Annotated[str, typer.Option(help="Sustained writes, e.g. 100/min.")] = str(
        DEFAULT_LIMITS.write.rate
    ),
    write_burst: Annotated[
        int, typer.Option(help="Write burst capacity.")
    ] = DEFAULT_LIMITS.write.burst,
    no_limits: Annotated[
        bool, typer.Option("--no-limits", help="Limits so high they never bite.")
    ] = False,
    enforced_read_limit: Annotated[str | None, typer.Option(help=_enforced("read rate"))] = None,
    enforced_read_burst: Annotated[int | None, typer.Option(help=_enforced("read burst"))] = None,
    enforced_write_limit: Annotated[str | None, typer.Option(help=_enforced("write rate"))] = None,
    enforced_write_burst: Annotated[int | None, typer.Option(help=_enforced("write burst"))] = None,
    reset_style: Annotated[
        str, typer.Option(help="X-RateLimit-Reset as delta seconds, epoch seconds, or absent.")
    ] = "delta",
    rate_limit_headers: Annotated[
        bool, typer.Option(help="Send X-RateLimit-* (off: bare nginx-style 429s).")
    ] = True,
    fractional_retry_after: Annotated[
        bool,
        typer.Option(
            "--fractional-retry-after",
            help="Retry-After with milliseconds instead of whole seconds.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the fault generator.")] = 0,
    error_500_rate: Annotated[float, typer.Option(help="Share of requests answered 500.")] = 0.0,
    error_503_rate: Annotated[float, typer.Option(help="Share answered 503 + Retry-After.")] = 0.0,
    retry_after_503: Annotated[float, typer.Option(help="Retry-After of 503s, seconds.")] = 1.0,
    slow_rate: Annotated[float, typer.Option(help="Share of requests held --slow-seconds.")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="Delay of slow requests, seconds.")] = 5.0,
    reset_rate: Annotated[float, typer.Option(help="Share reset before handling.")] = 0.0,
    commit_drop_rate: Annotated[
        float, typer.Option(help="Share applied, then dropped without a response.")
    ] = 0.0,
    latency: Annotated[float, typer.Option(help="Latency added to every request, seconds.")] = 0.0,
    max_body_bytes: Annotated[int, typer.Option(help="Request body cap (413 above).")] = 65536,
    idempotency_ttl: Annotated[float, typer.Option(help="Idempotency key lifetime, s.")] = 86400.0,
    ca_path: Annotated[
        Path | None, typer.Option(help="Write the CA bundle here (default: a temp dir).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (slower).")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the connection details as one JSON line.")
    ] = False,
) -> None:
    """Run the FlexPay simulator (HTTPS on loopback) until Ctrl-C."""
    # Here, not at the top: mounting the command on the CLI must stay cheap at start-up.
    from flexpay_batch.sim.config import UNLIMITED, FaultConfig, SimConfig

    if reset_style not in ("delta", "epoch", "absent"):
        raise typer.BadParameter("use delta, epoch or absent", param_hint="--reset-style")
    limits = UNLIMITED if no_limits else _limits(read_limit, read_burst, write_limit, write_burst)
    enforced = _enforced_limits(
        limits, enforced_read_limit, enforced_read_burst, enforced_write_limit, enforced_write_burst
    )
    try:
        faults = FaultConfig(
            seed=seed,
            error_500_rate=error_500_rate,
            error_503_rate=error_503_rate,
            retry_after_503=retry_after_503,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            reset_rate=reset_rate,
            commit_drop_rate=commit_drop_rate,
        )
        config = SimConfig(
            host=host,
            port=port,
            limits=limits,
            enforced_limits=enforced,
            rate_limit_headers=rate_limit_headers,
            reset_style=_reset_style(reset_style),
            fractional_retry_after=fractional_retry_after,
            faults=faults,
            idempotency_ttl=idempotency_ttl,
            admin_secret=os.environ.get(ADMIN_SECRET_ENV) or None,
            max_body_bytes=max_body_bytes,
            latency=latency,
            access_log=access_log,
            ca_path=ca_path,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    import asyncio

    # KeyboardInterrupt: a second Ctrl-C during shutdown; nothing more to clean up.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, json_output=json_output))


def _reset_style(text: str) -> ResetStyle:
    if text == "epoch":
        return "epoch"
    return "absent" if text == "absent" else "delta"


def _enforced_limits(
    advertised: LimitSettings,
    read: str | None,
    read_burst: int | None,
    write: str | None,
    write_burst: int | None,
) -> LimitSettings | None:
    """The really enforced limits; any class not given falls back to the advertised one."""
    if read is None and read_burst is None and write is None and write_burst is None:
        return None
    try:
        return LimitSettings(
            read=ClassLimits(
                parse_rate(read) if read else advertised.read.rate,
                read_burst if read_burst is not None else advertised.read.burst,
            ),
            write=ClassLimits(
                parse_rate(write) if write else advertised.write.rate,
                write_burst if write_burst is not None else advertised.write.burst,
            ),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def export_line(simulator: Simulator, role: str = "admin") -> str:
    """``export FLEXPAY_BASE_URL=… FLEXPAY_CA_BUNDLE=… FLEXPAY_TOKEN=…``, shell-quoted."""
    values = {
        "FLEXPAY_BASE_URL": simulator.base_url,
        "FLEXPAY_CA_BUNDLE": str(simulator.ca_path),
        "FLEXPAY_TOKEN": simulator.tokens[role],
    }
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


def describe(simulator: Simulator, *, as_json: bool) -> str:
    """The connection details a user needs, as text lines or one JSON object."""
    if as_json:
        return json.dumps(
            {
                "base_url": simulator.base_url,
                "ca_path": str(simulator.ca_path),
                "tokens": simulator.tokens,
                "admin_secret": simulator.admin_secret,
            }
        )
    lines = [
        "FlexPay simulator running (sandbox tokens below are not secrets).",
        f"  base URL:      {simulator.base_url}",
        f"  CA bundle:     {simulator.ca_path}",
        *(f"  token {name + ':':<19}{token}" for name, token in simulator.tokens.items()),
        f"  admin secret:  {simulator.admin_secret}   (header X-Sim-Admin, GET /_sim/effects)",
        "",
        "Point flexpay-batch at it: paste this in another shell (admin token; swap in another",
        "from the list above to try its scopes):",
        "",
        export_line(simulator),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


async def _serve(config: SimConfig, *, json_output: bool) -> None:
    # Imported here: the main CLI mounts this module, and only this command needs the server.
    import asyncio

    from flexpay_batch.sim.server import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(config) as simulator:
        typer.echo(describe(simulator, as_json=json_output))
        await stop.wait()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
