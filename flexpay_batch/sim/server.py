"""Running the simulator: in the current event loop, or on its own thread.

    async with Simulator(SimConfig(limits=...)) as sim:
        session.get(sim.base_url + "employees", ssl=sim.client_ssl_context(),
                    headers={"Authorization": f"Bearer {sim.tokens['admin']}"})

``stop()`` then ``start()`` is a server restart: same port, same CA, same data, tokens and
idempotency keys. ``SimulatorThread`` is the same thing behind a plain ``with`` for sync code
(tests that run the CLI as a subprocess, schemathesis, benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from aiohttp import web

from flexpay_batch.sim.app import build_app
from flexpay_batch.sim.config import DEFAULT_ORG, FaultConfig, SimConfig, TokenSpec
from flexpay_batch.sim.problems import ApiProblem
from flexpay_batch.sim.state import SimState
from flexpay_batch.sim.store import EMPLOYMENT_TYPE_IDS, PAY_GROUP_IDS
from flexpay_batch.sim.tls import SimTLS
from flexpay_batch.sim.validation import parse_employee

T = TypeVar("T")

# Seconds in-flight requests get when the server stops. A stop is a simulated crash or restart:
# requests still being held (slow faults, latency) are cancelled and their idempotency keys
# released, instead of aiohttp's default of waiting up to a minute for them.
_SHUTDOWN_GRACE = 0.1


class Simulator:
    """The FlexPay simulator as an async context manager (see the module docstring)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.state = SimState(self.config)
        self._tls = SimTLS()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._ca_path: Path | None = None
        self._runner: web.AppRunner | None = None
        self._port = self.config.port

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        self.close()

    @property
    def port(self) -> int:
        """The TCP port (known after the first start when configured as 0)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``https://HOST:PORT/v1/`` (IPv6 hosts in brackets)."""
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self._port}/v1/"

    @property
    def ca_path(self) -> Path:
        """The PEM file of the simulator's CA (written on first use)."""
        if self._ca_path is None:
            target = self.config.ca_path
            if target is None:
                self._tempdir = tempfile.TemporaryDirectory(prefix="flexpay-sim-")
                target = Path(self._tempdir.name) / "ca.pem"
            self._ca_path = self._tls.write_ca(target)
        return self._ca_path

    @property
    def tokens(self) -> dict[str, str]:
        """Token name → token (``read-only``, ``payroll-submitter``, ``admin`` by default)."""
        return self.state.named_tokens()

    @property
    def admin_secret(self) -> str:
        """The ``X-Sim-Admin`` secret for the ``/_sim/`` endpoints."""
        return self.state.admin_secret

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client SSL context trusting this simulator's CA."""
        return self._tls.client_context()

    def effects(self) -> dict[str, Any]:
        """The effect ledger now (same JSON as ``GET /_sim/effects``)."""
        return self.state.effects.snapshot()

    def revoke(self, token: str) -> bool:
        """Refuse ``token`` from now on (401 ``token_revoked``)."""
        return self.state.tokens.revoke(token)

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault settings; the generator restarts from ``faults.seed``."""
        self.state.set_faults(faults)

    def add_token(self, spec: TokenSpec) -> None:
        """Accept one more token (another organisation, an expiring one, ...)."""
        self.state.add_token(spec)

    def seed_employees(self, bodies: Iterable[Mapping[str, Any]], org_id: str = DEFAULT_ORG) -> int:
        """Create employees from ``POST /employees`` bodies directly, without requests.

        For demonstrations (``payroll --sandbox --sandbox-employees FILE``): the sandbox starts
        empty, and a payroll run needs employees. Bodies that do not validate or whose
        external id exists are skipped; returns how many were created. Seeded employees count
        as effects like any other.
        """
        created = 0
        for body in bodies:
            try:
                data = parse_employee(
                    dict(body), pay_groups=PAY_GROUP_IDS, employment_types=EMPLOYMENT_TYPE_IDS
                )
                self.state.store.create_employee(org_id, data, None)
            except ApiProblem:
                continue
            created += 1
        return created

    async def start(self) -> None:
        """Listen on the configured port (or the port of the previous start)."""
        if self._runner is not None:
            return
        self.ca_path  # noqa: B018  # make sure the CA file exists before anyone connects
        runner = web.AppRunner(
            build_app(self.state),
            access_log=logging.getLogger("aiohttp.access") if self.config.access_log else None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_GRACE,
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self.config.host, self._port, ssl_context=self._tls.server_context()
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self._port == 0:
            self._port = _bound_port(runner)

    async def stop(self) -> None:
        """Stop listening and close connections; the data stays for the next ``start()``."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def restart(self) -> None:
        """``stop()`` then ``start()`` on the same port."""
        await self.stop()
        await self.start()

    def close(self) -> None:
        """Remove the temporary CA file (after the last stop)."""
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
            self._ca_path = None


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


class SimulatorThread:
    """A ``Simulator`` on its own event loop in a daemon thread, as a sync context manager."""

    def __init__(self, config: SimConfig | None = None, *, startup_timeout: float = 30.0) -> None:
        self.config = config or SimConfig()
        self._startup_timeout = startup_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._sim: Simulator | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def simulator(self) -> Simulator:
        """The running ``Simulator`` (touch its state only through this class's methods)."""
        if self._sim is None:
            raise RuntimeError("the simulator thread is not running")
        return self._sim

    def start(self) -> None:
        """Start the thread and wait until the simulator listens."""
        self._thread = threading.Thread(target=self._main, name="flexpay-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._startup_timeout):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the simulator and join its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to start()'s caller, not lost in the thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Simulator(self.config) as sim:
            self._sim = sim
            self._ready.set()
            await self._stop.wait()

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        if self._loop is None:
            raise RuntimeError("the simulator thread is not running")

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def _sync(self, fn: Callable[[], T]) -> T:
        async def wrap() -> T:
            return fn()

        return self._call(wrap)

    @property
    def base_url(self) -> str:
        return self.simulator.base_url

    @property
    def ca_path(self) -> Path:
        return self.simulator.ca_path

    @property
    def tokens(self) -> dict[str, str]:
        return self._sync(lambda: self.simulator.tokens)

    @property
    def admin_secret(self) -> str:
        return self.simulator.admin_secret

    def client_ssl_context(self) -> ssl.SSLContext:
        return self.simulator.client_ssl_context()

    def effects(self) -> dict[str, Any]:
        """The effect ledger, read on the simulator's own loop (no torn counts)."""
        return self._sync(self.simulator.effects)

    def revoke(self, token: str) -> bool:
        return self._sync(lambda: self.simulator.revoke(token))

    def set_faults(self, faults: FaultConfig) -> None:
        self._sync(lambda: self.simulator.set_faults(faults))

    def add_token(self, spec: TokenSpec) -> None:
        self._sync(lambda: self.simulator.add_token(spec))

    def restart(self) -> None:
        """Stop and start the server on the same port, keeping its data."""
        self._call(self.simulator.restart)
