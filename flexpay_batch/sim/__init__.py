"""The FlexPay simulator: an HTTPS aiohttp server that implements the API contract.

    async with Simulator(SimConfig()) as sim:
        print(sim.base_url, sim.ca_path, sim.tokens["admin"])

Modules, one job each: ``config`` (settings, token presets), ``tls`` (CA and certificates),
``auth`` (tokens and scopes), ``buckets`` (rate limits), ``validation`` (request bodies),
``records`` (ids, money, pagination), ``store`` (per-organisation data; seed ids are listed
there), ``payroll`` (runs, items and their state machine), ``idempotency``,
``faults``, ``effects`` (the "exactly once" ledger), ``operations`` (the endpoints), ``app``
(the request pipeline), ``inspect`` (``/_sim/`` admin endpoints), ``openapi``, ``server``
(``Simulator``, ``SimulatorThread``) and ``cli`` (``flexpay-batch sim``).

Seed data: pay groups ``pg_weekly``, ``pg_biweekly``, ``pg_semimonthly``, ``pg_monthly``;
employment types ``full_time``, ``part_time``, ``contractor``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flexpay_batch.sim.config import (
        PRESETS,
        UNLIMITED,
        FaultConfig,
        SimConfig,
        TokenSpec,
        generate_preset_tokens,
    )
    from flexpay_batch.sim.server import Simulator, SimulatorThread
    from flexpay_batch.sim.store import EMPLOYMENT_TYPE_IDS, PAY_GROUP_IDS

#: Names loaded on first use. Importing ``flexpay_batch.sim.cli`` (to mount ``sim`` on the CLI)
#: runs this file, and ``flexpay-batch --help``, ``validate`` and ``status`` must not pay for
#: the simulator at start-up: the server pulls in aiohttp's web stack, cryptography and
#: trustme, and even the settings module costs more than the command's own definition.
_LAZY = {
    **dict.fromkeys(
        ("PRESETS", "UNLIMITED", "FaultConfig", "SimConfig", "TokenSpec", "generate_preset_tokens"),
        "flexpay_batch.sim.config",
    ),
    "Simulator": "flexpay_batch.sim.server",
    "SimulatorThread": "flexpay_batch.sim.server",
    "EMPLOYMENT_TYPE_IDS": "flexpay_batch.sim.store",
    "PAY_GROUP_IDS": "flexpay_batch.sim.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


__all__ = [
    "EMPLOYMENT_TYPE_IDS",
    "PAY_GROUP_IDS",
    "PRESETS",
    "UNLIMITED",
    "FaultConfig",
    "SimConfig",
    "Simulator",
    "SimulatorThread",
    "TokenSpec",
    "generate_preset_tokens",
]
