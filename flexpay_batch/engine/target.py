"""The API a run talks to: the configured FlexPay, or an embedded simulator (``--sandbox``).

::

    async with target(request, token, announce=show) as (base_url, ca_bundle, api_token):
        ...

With ``--sandbox`` it tells ``announce`` which simulator the run talks to, in sentences;
showing them is the caller's (the command line prints them as a banner:
``cli.progress.banner_printer``).

The only module of the engine that uses the simulator, and only inside ``target`` with
``--sandbox``: a real run never imports it (nor its server dependencies).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from flexpay_batch.api.client import validate_base_url
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.input.models import OnboardingRow
from flexpay_batch.input.readers import iter_records
from flexpay_batch.input.validation import Rejection, validate_rows

#: Told each sentence the operator must see before a run begins (the sandbox banner).
Announce = Callable[[str], None]


@asynccontextmanager
async def target(
    request: RunRequest, token: str | None, *, announce: Announce | None = None
) -> AsyncIterator[tuple[str, Path | None, str]]:
    """Yield ``(base_url, ca_bundle, token)`` of the API to use for the request.

    Without ``request.sandbox`` ``token`` must be given, and the configured base URL is checked
    (``errors.ConfigError``). With it, a simulator runs until the context ends, seeded with
    ``request.sandbox_employees`` if given, and its admin token is used; ``announce`` (if
    given) is told so: ``"SANDBOX: running against ..."``, then, after seeding,
    ``"SANDBOX: seeded N employees from FILE"``.
    """
    if not request.sandbox:
        assert token is not None
        # Checked before the run directory is made: a journal begun against a mistyped URL
        # would refuse the corrected command (the default run directory is the same).
        yield validate_base_url(request.settings.base_url), request.settings.ca_bundle, token
        return
    from flexpay_batch.sim import SimConfig, Simulator

    tell = announce or _ignore

    async with Simulator(SimConfig(limits=request.settings.limits)) as sim:
        tell(
            f"SANDBOX: running against an embedded FlexPay simulator at {sim.base_url}. "
            "Nothing real is touched; its data vanishes when this command ends.",
        )
        if request.sandbox_employees is not None:
            seeded = sim.seed_employees(_employee_bodies(request.sandbox_employees))
            tell(f"SANDBOX: seeded {seeded} employees from {request.sandbox_employees}")
        yield sim.base_url, sim.ca_path, sim.tokens["admin"]


def _employee_bodies(path: Path) -> Iterator[dict[str, object]]:
    """The request bodies of the valid rows of an onboarding file (for sandbox seeding)."""
    for item in validate_rows(iter_records(path), OnboardingRow, source_name=str(path)):
        if not isinstance(item, Rejection):
            yield item.model.to_request_body()


def _ignore(text: str) -> None:
    """No ``announce``: the engine shows nothing of its own."""


__all__ = ["Announce", "target"]
