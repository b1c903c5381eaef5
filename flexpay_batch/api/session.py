"""The run's API: its client with its retry policy and retry budget, so no request escapes them.

    api = ApiSession(client, settings.retry, RetryBudget())
    reply = await api.request("GET", "pay_groups", params={"limit": 100})   # retried
    reply = await api.call(lambda: job.send(api.client, task), attempts=attempts)

One ``ApiSession`` per run, handed to every job step that talks to the server (pre-flight
reads, look-ups, the rows, the run-level finish), so a run's ``--max-attempts``,
``--row-deadline`` and its one run-wide budget govern every request it makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict, Unpack

from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.retry.loop import Attempts, OnRetry, Send, execute
from flexpay_batch.core.policies import RetryPolicy


class RequestOptions(TypedDict, total=False):
    """What ``ApiSession.request`` passes on to ``FlexPayClient.request`` with each attempt."""

    json_body: Mapping[str, object] | None
    params: Mapping[str, str | int] | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class ApiSession:
    """``client`` (one attempt per ``client.request``) plus the run's ``policy`` and ``budget``."""

    client: FlexPayClient
    policy: RetryPolicy
    budget: RetryBudget

    async def call(
        self, send: Send, *, attempts: Attempts | None = None, on_retry: OnRetry | None = None
    ) -> ApiResponse:
        """``send`` (one attempt) retried under the run's policy and budget (``execute``)."""
        return await execute(
            send, policy=self.policy, budget=self.budget, attempts=attempts, on_retry=on_retry
        )

    async def request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> ApiResponse:
        """``client.request`` retried under the run's policy and budget (same key each time)."""
        return await self.call(lambda: self.client.request(method, path, **options))
