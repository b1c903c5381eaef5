"""Seeded fault injection: which requests fail, and how a connection is dropped.

``FaultInjector.plan()`` is called once per API request in arrival order and draws twice from
``random.Random(config.seed)``: one draw picks at most one outcome fault (reset, 500, 503 or
commit-then-drop, by stacking their rates on [0, 1)), the other decides "slow". The same seed
and the same request order give the same faults. With every rate at zero nothing is drawn.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from flexpay_batch.sim.config import FaultConfig


class Outcome(Enum):
    """What happens to a request apart from being slow."""

    NORMAL = "normal"
    RESET = "reset"
    ERROR_500 = "error_500"
    ERROR_503 = "error_503"
    COMMIT_DROP = "commit_drop"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults chosen for one request."""

    outcome: Outcome
    slow: bool


NO_FAULT = FaultPlan(Outcome.NORMAL, slow=False)


class FaultInjector:
    """Draws a ``FaultPlan`` per request from a generator seeded with ``config.seed``."""

    __slots__ = ("_bands", "_rng", "config")

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        bands: list[tuple[float, Outcome]] = []
        edge = 0.0
        for rate, outcome in (
            (config.reset_rate, Outcome.RESET),
            (config.error_500_rate, Outcome.ERROR_500),
            (config.error_503_rate, Outcome.ERROR_503),
            (config.commit_drop_rate, Outcome.COMMIT_DROP),
        ):
            edge += rate
            bands.append((edge, outcome))
        self._bands = tuple(bands)

    def plan(self) -> FaultPlan:
        """The faults for the next request."""
        if not self.config.enabled:
            return NO_FAULT
        draw, slow_draw = self._rng.random(), self._rng.random()
        outcome = next((o for edge, o in self._bands if draw < edge), Outcome.NORMAL)
        return FaultPlan(outcome, slow=slow_draw < self.config.slow_rate)


def drop_connection(request: web.BaseRequest) -> None:
    """Close the request's connection at once with a TCP reset, sending no response.

    SO_LINGER with a zero timeout makes close() send RST instead of FIN, which is what a
    crashed server or a load balancer cutting the connection looks like to the client.
    """
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # OSError: the peer already closed it, so there is nothing left to reset.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
