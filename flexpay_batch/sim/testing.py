"""Helpers for code that tests against the simulator: a fake clock, a thin client, sample bodies.

    clock = FakeClock()
    async with Simulator(SimConfig(clock=clock)) as sim, SimClient(sim) as api:
        reply = await api.post("employees", json=employee_body("ext-1"))
        clock.advance(60.0)   # the buckets refill without anyone sleeping

``SimClient`` is deliberately dumb (one attempt, no retry, no limiter): tests use it to see
exactly what the server answered. The engine has its own client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

import aiohttp


class FakeClock:
    """A monotonic clock that moves only when told to (seconds)."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards: the clock is monotonic)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self.now += seconds


class SimulatorLike(Protocol):
    """What ``SimClient`` needs: ``Simulator`` and ``SimulatorThread`` both provide it."""

    @property
    def base_url(self) -> str: ...

    @property
    def tokens(self) -> dict[str, str]: ...

    @property
    def admin_secret(self) -> str: ...

    def client_ssl_context(self) -> object: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: status, headers (case-insensitive), JSON body or None, raw text."""

    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> dict[str, Any]:
        """The body parsed as a JSON object (``Any`` values: tests index freely)."""
        value = json.loads(self.text)
        if not isinstance(value, dict):
            raise TypeError("the response body is not a JSON object")
        return value

    @property
    def error(self) -> dict[str, Any]:
        """The envelope's ``error`` object (fails loudly if there is none)."""
        error = self.json["error"]
        if not isinstance(error, dict):
            raise TypeError("no error envelope")
        return error


class SimClient:
    """An aiohttp session to one simulator; ``token`` is a preset name or a raw token."""

    def __init__(
        self,
        sim: SimulatorLike,
        *,
        token: str = "admin",  # noqa: S107  # a preset's name, not a secret
        timeout: float = 10.0,
    ) -> None:
        self.sim = sim
        self.default_token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        context = self.sim.client_ssl_context()
        connector = aiohttp.TCPConnector(ssl=context)  # type: ignore[arg-type]
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use SimClient as an async context manager")
        return self._session

    def auth(self, token: str | None = None) -> dict[str, str]:
        """The Authorization header for a preset name or raw token."""
        name = token or self.default_token
        return {"Authorization": f"Bearer {self.sim.tokens.get(name, name)}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        key: str | None = None,
        client_timeout: float | None = None,
        authorize: bool = True,
    ) -> Reply:
        """One request to ``base_url + path``; ``key`` is sent as ``Idempotency-Key``.

        ``client_timeout`` (seconds) overrides the session's total timeout for this request;
        ``authorize=False`` sends no Authorization header of its own.
        """
        all_headers = {**(self.auth(token) if authorize else {}), **(headers or {})}
        if key is not None:
            all_headers["Idempotency-Key"] = key
        timeout = aiohttp.ClientTimeout(total=client_timeout) if client_timeout else self._timeout
        async with self.session.request(
            method,
            self.sim.base_url + path.lstrip("/"),
            json=json,
            params=params,
            headers=all_headers,
            timeout=timeout,
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def get(self, path: str, **kw: object) -> Reply:
        return await self.request("GET", path, **kw)  # type: ignore[arg-type]

    async def post(self, path: str, **kw: object) -> Reply:
        return await self.request("POST", path, **kw)  # type: ignore[arg-type]

    async def effects(self) -> dict[str, Any]:
        """``GET /_sim/effects`` with the admin secret."""
        url = self.sim.base_url.removesuffix("v1/") + "_sim/effects"
        headers = {"X-Sim-Admin": self.sim.admin_secret}
        async with self.session.get(url, headers=headers) as response:
            value = await response.json()
        if not isinstance(value, dict):
            raise TypeError("the effects report is not an object")
        return value


async def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Yield to the event loop until ``condition()`` holds; TimeoutError after ``within`` s.

    For "the server has got that far" (a key reserved, an effect applied) instead of guessing
    with a fixed sleep.
    """
    async with asyncio.timeout(within):
        # Polls state owned by the server (no event exists to wait on); a test helper only.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def employee_body(external_id: str, **overrides: object) -> dict[str, object]:
    """A valid ``POST /employees`` body for ``external_id``; ``overrides`` replace fields."""
    body: dict[str, object] = {
        "external_id": external_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"{external_id}@example.com",
        "hire_date": "2024-03-01",
        "pay_group_id": "pg_biweekly",
        "employment_type": "full_time",
        "compensation": {"type": "salary", "amount": "85000.00", "currency": "USD"},
        "tax_id": "123-45-6789",
        "bank_account": {"routing_number": "021000021", "account_number": "000123456789"},
    }
    body.update(overrides)
    return body


def run_body(**overrides: object) -> dict[str, object]:
    """A valid ``POST /payroll_runs`` body."""
    body: dict[str, object] = {
        "pay_group_id": "pg_biweekly",
        "period_start": "2024-06-01",
        "period_end": "2024-06-14",
        "pay_date": "2024-06-19",
    }
    body.update(overrides)
    return body


def item_body(employee_id: str, gross: str = "3269.23", **overrides: object) -> dict[str, object]:
    """A valid ``POST /payroll_runs/{id}/items`` body."""
    body: dict[str, object] = {"employee_id": employee_id, "gross_amount": gross, "currency": "USD"}
    body.update(overrides)
    return body


__all__ = [
    "FakeClock",
    "Reply",
    "SimClient",
    "SimulatorLike",
    "employee_body",
    "item_body",
    "run_body",
    "wait_until",
]
