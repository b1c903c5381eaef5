"""The schedule: organisations take turns, an organisation's jobs run in order, one job per
token at a time, and a stopped job skips its organisation's later ones."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.bureau.schedule import Schedule, Slot


def _start_all(schedule: Schedule) -> list[int]:
    started = []
    while (index := schedule.next_ready()) is not None:
        started.append(index)
    return started


def test_an_org_with_many_jobs_does_not_starve_the_others() -> None:
    """With one slot, acme's 50 jobs alternate with beta's and chi's, not 50 first."""
    slots = [Slot("acme", "a")] * 50 + [Slot("beta", "b")] * 2 + [Slot("chi", "c")] * 2
    schedule = Schedule(slots)
    order = []
    while (index := schedule.next_ready()) is not None:
        order.append(slots[index].org)
        schedule.finished(index, stopped=False)
    assert order[:6] == ["acme", "beta", "chi", "acme", "beta", "chi"]
    assert order[6:] == ["acme"] * 48


def test_different_orgs_start_together_one_job_each() -> None:
    """Every organisation's first job may start at once; its second waits for the first."""
    slots = [Slot("acme", "a"), Slot("acme", "a2"), Slot("beta", "b"), Slot("chi", "c")]
    schedule = Schedule(slots)
    assert _start_all(schedule) == [0, 2, 3]
    schedule.finished(0, stopped=False)
    assert _start_all(schedule) == [1]


def test_two_orgs_on_one_token_never_run_together() -> None:
    """A token shared by two organisations runs one of their jobs at a time."""
    schedule = Schedule([Slot("acme", "shared"), Slot("beta", "shared"), Slot("chi", "c")])
    assert _start_all(schedule) == [0, 2]
    schedule.finished(0, stopped=False)
    assert _start_all(schedule) == [1]


def test_a_stopped_job_skips_the_rest_of_its_org() -> None:
    """acme's onboarding stopped: its payroll is skipped, beta goes on."""
    schedule = Schedule([Slot("acme", "a"), Slot("acme", "a"), Slot("beta", "b")])
    assert _start_all(schedule) == [0, 2]
    assert schedule.finished(0, stopped=True) == [1]
    assert schedule.next_ready() is None
    assert schedule.finished(2, stopped=False) == []
    assert schedule.running == 0


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("wxyz")), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=4),
    st.randoms(use_true_random=False),
)
def test_invariants_hold_in_any_order_of_endings(
    jobs: list[tuple[str, str]], concurrency: int, rng: random.Random
) -> None:
    """Whatever order jobs end in: never two of one org or one lane at once, each org's jobs in
    manifest order, every job run exactly once."""
    slots = [Slot(org, lane) for org, lane in jobs]
    schedule = Schedule(slots)
    running: list[int] = []
    started: list[int] = []
    while True:
        while len(running) < concurrency and (index := schedule.next_ready()) is not None:
            assert slots[index].org not in {slots[i].org for i in running}
            assert slots[index].lane not in {slots[i].lane for i in running}
            running.append(index)
            started.append(index)
        if not running:
            break
        ended = running.pop(rng.randrange(len(running)))
        schedule.finished(ended, stopped=False)
    assert sorted(started) == list(range(len(slots)))
    for org in {slot.org for slot in slots}:
        mine = [index for index in started if slots[index].org == org]
        assert mine == sorted(mine)
