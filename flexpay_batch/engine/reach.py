"""The pre-flight's answer to a server that cannot be reached: give up in seconds, resumably.

::

    await job.prepare(FailFastOnConnect(client, policy, budget), secret)

Before any row is sent, a connection that cannot even be opened (refused, no route, DNS, a
connect timeout) is almost always a wrong base URL, a server that is down or a network in
the way: retrying it for the whole row deadline only makes the operator wait (21 s, then
exit 1, used to be the experience). After ``CONNECT_TRIES`` such failures the pre-flight
stops with ``errors.ServiceUnhealthy`` (exit 4, "API unavailable, resumable") saying what to
check. Every other failure is retried under the run's policy as before.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from flexpay_batch.api.client import ApiResponse
from flexpay_batch.api.retry.loop import Attempts, OnRetry, Send
from flexpay_batch.api.session import ApiSession
from flexpay_batch.core import errors

#: Connection attempts that never opened before the pre-flight gives up.
CONNECT_TRIES: Final = 3


def unreachable(base_url: str, error: errors.TransportError) -> errors.ServiceUnhealthy:
    """The error that stops a run whose API cannot be reached."""
    where = urlsplit(base_url).netloc or base_url
    return errors.ServiceUnhealthy(
        f"the FlexPay API at {where} cannot be reached ({error.message}); nothing was sent",
        hint="Check the base URL (--base-url or FLEXPAY_BASE_URL, ending in /v1/), that the "
        "server is up, and that this machine can reach it (VPN, proxy, firewall); then run "
        "the same command again or `flexpay-batch resume RUN_DIR`.",
    )


class FailFastOnConnect(ApiSession):
    """An ``ApiSession`` that stops after ``CONNECT_TRIES`` connections that never opened."""

    __slots__ = ()

    async def call(
        self, send: Send, *, attempts: Attempts | None = None, on_retry: OnRetry | None = None
    ) -> ApiResponse:
        never_opened = 0

        def watch(attempt: int, error: errors.RetryableError, delay: float) -> None:
            nonlocal never_opened
            if isinstance(error, errors.TransportError) and not error.indeterminate:
                never_opened += 1
                if never_opened >= CONNECT_TRIES:
                    # Raised from the hook, before the policy's next backoff sleep.
                    raise unreachable(self.client.base_url, error)
            if on_retry is not None:
                on_retry(attempt, error, delay)

        try:
            return await super().call(send, attempts=attempts, on_retry=watch)
        except errors.TransportError as error:
            if error.indeterminate:
                raise
            raise unreachable(self.client.base_url, error) from None


__all__ = ["CONNECT_TRIES", "FailFastOnConnect", "unreachable"]
