"""The simulator's settings as frozen values: limits, faults, tokens.

Everything the simulator does differently from one run to the next is decided here, once, and
passed in; there are no module-level switches. Times are seconds. ``TokenSpec.expires_at`` is
wall-clock epoch seconds (what an operator would read on a dashboard); the ``clock`` used by
the buckets and the idempotency TTL is a monotonic clock, injectable for tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, LimitSettings, Rate

ResetStyle = Literal["delta", "epoch", "absent"]

READ_EMPLOYEES = "read:employees"
WRITE_EMPLOYEES = "write:employees"
WRITE_PAYROLL = "write:payroll"
READ_PAYSTUBS = "read:paystubs"
ALL_SCOPES = frozenset({READ_EMPLOYEES, WRITE_EMPLOYEES, WRITE_PAYROLL, READ_PAYSTUBS})

#: The dashboard's token presets (contract "Transport and auth"): preset name → scopes.
PRESETS: Mapping[str, frozenset[str]] = {
    "read-only": frozenset({READ_EMPLOYEES, READ_PAYSTUBS}),
    "payroll-submitter": frozenset({READ_EMPLOYEES, READ_PAYSTUBS, WRITE_PAYROLL}),
    "admin": ALL_SCOPES,
}

DEFAULT_ORG = "org_1"

#: Limits so high that no benchmark or functional test ever meets them.
UNLIMITED = LimitSettings(
    read=ClassLimits(Rate(1_000_000_000, 1.0), burst=1_000_000_000),
    write=ClassLimits(Rate(1_000_000_000, 1.0), burst=1_000_000_000),
)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Seeded fault injection; every rate is a probability per API request (0 = never).

    Per request the simulator draws from ``random.Random(seed)`` in arrival order, so a
    sequential client sees the same faults on every run with the same seed.

    - ``reset_rate``: the connection is reset before the request is handled (no effect).
    - ``error_500_rate``: a 500 ``api_error`` before the request is handled (no effect).
    - ``error_503_rate``: a 503 with ``Retry-After: retry_after_503`` seconds (no effect).
    - ``slow_rate``: the request is held ``slow_seconds`` before its effect is applied; set it
      above the client's timeout to get an indeterminate write (the effect still happens).
    - ``commit_drop_rate``: the effect is applied and stored for idempotent replay, then the
      connection is closed without a response.
    """

    seed: int = 0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    retry_after_503: float = 1.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    reset_rate: float = 0.0
    commit_drop_rate: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.error_500_rate, self.error_503_rate, self.reset_rate, self.commit_drop_rate)
        if any(not 0.0 <= r <= 1.0 for r in (*rates, self.slow_rate)):
            raise ValueError("fault rates are probabilities between 0 and 1")
        # The four outcome faults share one draw, so together they cannot exceed certainty.
        if sum(rates) > 1.0:
            raise ValueError("reset, 500, 503 and commit-drop rates must sum to at most 1")
        if self.slow_seconds < 0 or self.retry_after_503 < 0:
            raise ValueError("slow_seconds and retry_after_503 are non-negative seconds")

    @property
    def enabled(self) -> bool:
        """True when any fault can happen (the hot path skips the draw otherwise)."""
        return (
            self.error_500_rate
            + self.error_503_rate
            + self.reset_rate
            + self.commit_drop_rate
            + self.slow_rate
        ) > 0.0


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One bearer token: its scopes, organisation, optional expiry (epoch seconds) and name.

    ``name`` is only a label for ``Simulator.tokens`` (the preset name for generated tokens).
    """

    token: str
    scopes: frozenset[str]
    org_id: str = DEFAULT_ORG
    expires_at: float | None = None
    name: str | None = None


def generate_preset_tokens(org_id: str = DEFAULT_ORG) -> tuple[TokenSpec, ...]:
    """One fresh random token per preset, named ``fps_<preset>_<hex>`` so logs show which."""
    return tuple(
        TokenSpec(
            f"fps_{name.replace('-', '_')}_{secrets.token_hex(12)}", scopes, org_id, name=name
        )
        for name, scopes in PRESETS.items()
    )


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything one simulator instance needs; see docs/architecture.md "Simulator".

    ``limits`` are advertised in the headers and enforced unless ``enforced_limits`` is set,
    in which case the buckets enforce those (stricter) while the headers keep advertising
    ``limits``. ``max_body_bytes`` caps request bodies (413 above it). ``latency`` seconds are
    added to every API request. ``fractional_retry_after`` sends ``Retry-After`` with
    millisecond precision instead of RFC 9110's whole seconds (the body's ``retry_after`` is
    always precise). ``ca_path``: where the CA PEM is written (None: a private temp dir).
    """

    host: str = "127.0.0.1"
    port: int = 0
    limits: LimitSettings = DEFAULT_LIMITS
    enforced_limits: LimitSettings | None = None
    rate_limit_headers: bool = True
    reset_style: ResetStyle = "delta"
    fractional_retry_after: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    idempotency_ttl: float = 86_400.0
    tokens: tuple[TokenSpec, ...] = ()
    admin_secret: str | None = None
    clock: Callable[[], float] | None = None
    max_body_bytes: int = 64 * 1024
    latency: float = 0.0
    access_log: bool = False
    ca_path: Path | None = None

    def __post_init__(self) -> None:
        if self.reset_style not in ("delta", "epoch", "absent"):
            raise ValueError("reset_style is one of delta, epoch, absent")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.latency < 0 or self.idempotency_ttl <= 0:
            raise ValueError("latency must be >= 0 and idempotency_ttl > 0 seconds")
