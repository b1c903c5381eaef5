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
