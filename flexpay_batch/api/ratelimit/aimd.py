"""The adaptive rate (AIMD) as a frozen policy and a frozen state: pure transitions, no clock.

    policy = AimdSettings()
    state = AimdState.initial(configured=10.0)
    state = policy.on_throttle(state, now=12.5, ticket=12.0)  # a 429: halve, lower ceiling

Every transition takes the state and a time and returns a new state, so a store can apply one
atomically wherever the state is kept (a dict in this process, a Redis hash shared by several)
without knowing the rules. Rates are requests per second; times are the store's clock.

- On a throttle the rate is multiplied by ``decrease_factor``, floored at
  ``min_rate_fraction`` of the configured rate, and the rate at which the 429 came, times
  ``ceiling_margin``, becomes the ceiling. Only one decrease per burst of 429s: a 429 for a
  request granted before the last decrease (its ``ticket``), or without a ticket less than
  ``decrease_cooldown`` seconds after it, is the same event.
- After ``increase_after`` successes in a row the rate grows by ``increase_step`` of the
  configured rate, up to the ceiling. After ``probe_interval`` seconds without a 429 the
  ceiling rises one step, so a limit that was only temporarily stricter is forgotten.
- An advertised limit (``X-RateLimit-Limit``) below the configuration caps the rate; the
  configuration is never exceeded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class AimdState:
    """Where the adaptive rate stands; every field a plain number so any store can keep it.

    ``rate`` is the current sustained rate, ``ceiling`` the one learned from 429s,
    ``limit_cap`` the one the server advertised (all requests per second, never above
    ``configured``). ``last_decrease`` and ``ceiling_checked_at`` are store-clock times.
    """

    configured: float
    rate: float
    ceiling: float
    limit_cap: float
    last_decrease: float | None = None
    ceiling_checked_at: float | None = None
    streak: int = 0
    decreases: int = 0
    increases: int = 0

    @classmethod
    def initial(cls, configured: float) -> AimdState:
        """The state before any feedback: everything at the configured rate."""
        return cls(configured=configured, rate=configured, ceiling=configured, limit_cap=configured)

    def for_configured(self, configured: float) -> AimdState:
        """This state as a user configured at ``configured`` reads it (two runs of one token
        may be configured differently). A rate, ceiling or cap equal to this state's own
        configured rate says nothing was learnt below the configuration: it becomes
        ``configured``. One below it was learnt from the server: it stays, capped at
        ``configured``. The same reading as ``redis_lua``'s ``own``."""
        if configured == self.configured:
            return self

        def own(value: float) -> float:
            return configured if value >= self.configured else min(value, configured)

        return replace(
            self,
            configured=configured,
            rate=own(self.rate),
            ceiling=own(self.ceiling),
            limit_cap=own(self.limit_cap),
        )

    @property
    def ceiling_rate(self) -> float:
        """The highest rate the feedback so far allows."""
        return min(self.limit_cap, self.ceiling)


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """Constants of the adaptive rate (see the module docstring); rates are fractions.

    - ``decrease_factor``: multiply the current rate by this on a 429.
    - ``min_rate_fraction``: never below this fraction of the configured rate.
    - ``ceiling_margin``: the rate that drew a 429, times this, is the new ceiling.
    - ``increase_after``: unthrottled responses in a row before one additive step.
    - ``increase_step``: one step, as a fraction of the configured rate.
    - ``decrease_cooldown``: seconds during which ticket-less 429s count as one event.
    - ``probe_interval``: seconds without a 429 before the ceiling is raised a step.
    """

    decrease_factor: float = 0.5
    min_rate_fraction: float = 0.05
    ceiling_margin: float = 0.95
    increase_after: int = 10
    increase_step: float = 0.05
    decrease_cooldown: float = 1.0
    probe_interval: float = 300.0

    def __post_init__(self) -> None:
        fractions = (self.decrease_factor, self.min_rate_fraction, self.ceiling_margin)
        if not all(0.0 < value <= 1.0 for value in fractions):
            raise ValueError("AIMD factors, margin and floor must lie in (0, 1]")
        if self.increase_after < 1 or self.increase_step <= 0:
            raise ValueError("AIMD needs increase_after >= 1 and a positive increase_step")

    def adopt_limit(self, state: AimdState, advertised: float) -> AimdState:
        """``advertised`` requests per second from the server cap the rate (never raise it)."""
        cap = min(state.configured, advertised)
        if cap == state.limit_cap and state.rate <= state.ceiling_rate:
            return state  # the same header as last time (nearly every response): no copies
        adopted = replace(state, limit_cap=cap)
        return replace(adopted, rate=min(state.rate, adopted.ceiling_rate))

    def on_throttle(self, state: AimdState, now: float, ticket: float | None) -> AimdState:
        """A 429 (or a bare 503) for the request granted at ``ticket`` arrived at ``now``."""
        state = replace(state, streak=0, ceiling_checked_at=now)
        if not self._is_new_event(state, now, ticket):
            return state
        floor = state.configured * self.min_rate_fraction
        return replace(
            state,
            ceiling=max(floor, min(state.ceiling, state.rate * self.ceiling_margin)),
            rate=max(floor, state.rate * self.decrease_factor),
            last_decrease=now,
            decreases=state.decreases + 1,
        )

    def _is_new_event(self, state: AimdState, now: float, ticket: float | None) -> bool:
        last = state.last_decrease
        if last is None:
            return True
        if ticket is not None:
            return ticket > last
        return now - last >= self.decrease_cooldown

    def on_success(self, state: AimdState, now: float) -> AimdState:
        """A response that was neither throttled nor a 5xx arrived at ``now``.

        At its ceiling, with the ceiling at the configuration, nothing can grow: the streak is
        not counted (it starts again from 0 once growth is possible) and the state object is
        returned as it is, which is what nearly every response of a healthy run sees.
        """
        if (
            state.streak == 0
            and state.rate >= min(state.limit_cap, state.ceiling)
            and state.ceiling >= state.configured
        ):
            return state
        state = self._probe_ceiling(replace(state, streak=state.streak + 1), now)
        if state.streak < self.increase_after:
            return state
        state = replace(state, streak=0)
        if state.rate >= state.ceiling_rate:
            return state
        step = state.configured * self.increase_step
        return replace(
            state,
            rate=min(state.ceiling_rate, state.rate + step),
            increases=state.increases + 1,
        )

    def _probe_ceiling(self, state: AimdState, now: float) -> AimdState:
        checked = state.ceiling_checked_at
        if state.ceiling >= state.configured or checked is None:
            return state
        if now - checked < self.probe_interval:
            return state
        step = state.configured * self.increase_step
        return replace(
            state, ceiling_checked_at=now, ceiling=min(state.configured, state.ceiling + step)
        )
