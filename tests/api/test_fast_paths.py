"""Per-response fast paths (issue 16) change no decision: they only skip copying state."""

from __future__ import annotations

from flexpay_batch.api.ratelimit.aimd import AimdSettings, AimdState


def test_adopting_the_same_limit_again_keeps_the_state_object() -> None:
    settings = AimdSettings()
    state = settings.adopt_limit(AimdState.initial(10.0), 5.0)
    assert state.limit_cap == 5.0
    assert state.rate == 5.0
    # Every later response repeats the header: nothing changes, nothing is copied.
    assert settings.adopt_limit(state, 5.0) is state
    # A different limit still takes effect.
    lower = settings.adopt_limit(state, 2.0)
    assert (lower.limit_cap, lower.rate) == (2.0, 2.0)
