"""The idempotency store as a pure object with a fake clock."""

from __future__ import annotations

import pytest

from flexpay_batch.sim.idempotency import IdempotencyStore, StoredResponse
from flexpay_batch.sim.problems import ApiProblem
from flexpay_batch.sim.testing import FakeClock


def test_store_releases_a_reservation_that_produced_no_answer() -> None:
    """abandon() after a crash lets the next attempt with the key run instead of seeing 409."""
    clock = FakeClock()
    store = IdempotencyStore(ttl=10.0, clock=clock)
    assert store.begin("org", "k", b"fp") is None
    with pytest.raises(ApiProblem, match="still being processed"):
        store.begin("org", "k", b"fp")
    store.abandon("org", "k")
    assert store.begin("org", "k", b"fp") is None
    store.finish("org", "k", StoredResponse(201, b"{}"))
    assert store.begin("org", "k", b"fp") == StoredResponse(201, b"{}")


def test_store_forgets_expired_entries() -> None:
    """Expired keys are swept so memory stays bounded by the TTL window."""
    clock = FakeClock()
    store = IdempotencyStore(ttl=10.0, clock=clock)
    for n in range(100):
        store.begin("org", f"k{n}", b"fp")
        store.finish("org", f"k{n}", StoredResponse(200, b"{}"))
    clock.advance(11.0)
    store.begin("org", "new", b"fp")
    assert len(store) == 1
