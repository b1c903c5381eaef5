"""A tiny hostile FlexPay: an aiohttp.web server on 127.0.0.1 over HTTPS (the simulator's
trustme CA), answering every request with whatever the test's handler says.

::

    async with StubServer(handler, tmp_path) as stub:
        async with stub.client() as client:
            await client.request("POST", "employees", json_body={}, idempotency_key="k")

Unlike aioresponses, bytes really cross a socket: a body sent in pieces arrives in pieces,
a reply that never ends never ends, and the client's own reading code is what is tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from flexpay_batch.api.client import FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core.policies import Timeouts
from flexpay_batch.sim.tls import SimTLS
from tests.fake_api import NO_LIMITS, TOKEN

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def send_in_pieces(
    request: web.Request,
    body: bytes,
    *,
    status: int = 201,
    piece: int = 16 * 1024,
    pause: float = 0.002,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Answer with ``body`` chunked in ``piece``-byte writes, each flushed before the next.

    The short pause only makes the pieces arrive as separate TCP reads (as on a real
    network); nothing is asserted about time.
    """
    response = web.StreamResponse(status=status, headers=headers or {})
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(body), piece):
        await response.write(body[start : start + piece])
        await asyncio.sleep(pause)
    await response.write_eof()
    return response


class StubServer:
    """One HTTPS server on an ephemeral loopback port; ``handler`` answers every request."""

    def __init__(self, handler: Handler, tmp_path: Path) -> None:
        self._handler = handler
        self._tls = SimTLS()
        self.ca = self._tls.write_ca(tmp_path / "stub-ca.pem")
        self.requests: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        await request.read()
        return await self._handler(request)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls.server_context())
        await site.start()
        server = site._server  # aiohttp exposes the bound port nowhere else
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/"

    def client(self, *, timeouts: Timeouts | None = None, **kwargs: Any) -> FlexPayClient:
        """A client of this server with limiters that never wait."""
        return FlexPayClient(
            self.base_url,
            TOKEN,
            ca_bundle=self.ca,
            limiters=kwargs.pop("limiters", None) or LimiterSet(NO_LIMITS, start="full"),
            timeouts=timeouts or Timeouts(connect=5.0, read=5.0, total=10.0),
            **kwargs,
        )
