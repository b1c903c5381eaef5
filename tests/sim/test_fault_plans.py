"""The fault generator as a pure object: seeded, reproducible, rates respected."""

from __future__ import annotations

from collections import Counter

import pytest

from flexpay_batch.sim import FaultConfig
from flexpay_batch.sim.faults import FaultInjector, Outcome


def test_same_seed_gives_the_same_faults_and_rates_hold() -> None:
    """Two injectors with one seed agree draw for draw; shares match the configured rates."""
    config = FaultConfig(
        seed=7, error_500_rate=0.1, error_503_rate=0.2, reset_rate=0.05, slow_rate=0.3
    )
    a, b = FaultInjector(config), FaultInjector(config)
    plans = [a.plan() for _ in range(20_000)]
    assert plans == [b.plan() for _ in range(20_000)]
    outcomes = Counter(p.outcome for p in plans)
    assert outcomes[Outcome.ERROR_500] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert outcomes[Outcome.ERROR_503] / 20_000 == pytest.approx(0.2, abs=0.01)
    assert outcomes[Outcome.RESET] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert sum(p.slow for p in plans) / 20_000 == pytest.approx(0.3, abs=0.01)


def test_fault_rates_are_validated() -> None:
    """Rates outside [0, 1] or outcome rates summing above 1 are refused at construction."""
    with pytest.raises(ValueError, match="probabilities"):
        FaultConfig(error_500_rate=1.5)
    with pytest.raises(ValueError, match="sum"):
        FaultConfig(error_500_rate=0.6, error_503_rate=0.6)


def test_no_faults_configured_draws_nothing() -> None:
    """With every rate at zero the generator is not consulted: the plan is always normal."""
    injector = FaultInjector(FaultConfig(seed=1))
    assert {injector.plan().outcome for _ in range(100)} == {Outcome.NORMAL}
