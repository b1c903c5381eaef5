"""``SimState``: everything a simulator keeps across a stop/start (a "server restart").

Tokens, buckets, data, idempotency keys, the effect ledger, the fault generator and the admin
secret live here; the aiohttp application and its listening socket are rebuilt on each start.
"""

from __future__ import annotations

import itertools
import secrets
import time

from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.sim.auth import TokenRegistry
from flexpay_batch.sim.buckets import BucketSet, format_per_minute
from flexpay_batch.sim.config import FaultConfig, SimConfig, TokenSpec, generate_preset_tokens
from flexpay_batch.sim.effects import EffectLog
from flexpay_batch.sim.faults import FaultInjector
from flexpay_batch.sim.idempotency import IdempotencyStore
from flexpay_batch.sim.store import Store


class SimState:
    """The simulator's memory; one per ``Simulator``, shared by every app built for it."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        clock = config.clock or time.monotonic
        self.token_specs: list[TokenSpec] = list(config.tokens or generate_preset_tokens())
        self.tokens = TokenRegistry(self.token_specs)
        self.buckets = BucketSet(config.limits, config.enforced_limits, clock)
        self.effects = EffectLog()
        self.store = Store(self.effects)
        self.idempotency = IdempotencyStore(config.idempotency_ttl, clock)
        self.faults = FaultInjector(config.faults)
        self.admin_secret = config.admin_secret or secrets.token_urlsafe(24)
        self.limit_header = {
            cls: format_per_minute(config.limits.for_class(cls)) for cls in EndpointClass
        }
        # Request ids: a random per-simulator prefix plus a counter is unique and costs
        # nothing on the hot path (no entropy read per request).
        self._request_prefix = secrets.token_hex(4)
        self._request_seq = itertools.count(1)

    def next_request_id(self) -> str:
        """A fresh ``req_…`` id for the next request."""
        return f"req_{self._request_prefix}{next(self._request_seq):010x}"

    def add_token(self, spec: TokenSpec) -> None:
        """Accept one more token from now on."""
        self.token_specs.append(spec)
        self.tokens.add(spec)

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault settings; the generator restarts from ``faults.seed``."""
        self.faults = FaultInjector(faults)

    def named_tokens(self) -> dict[str, str]:
        """Token name (preset name when generated) → token string."""
        return {spec.name or spec.token: spec.token for spec in self.token_specs}
