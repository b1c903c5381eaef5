"""Which bureau job runs next: round robin by organisation, one job per token at a time.

::

    schedule = Schedule([Slot("acme", lane="tok-a"), Slot("acme", lane="tok-a"),
                         Slot("beta", lane="tok-b")])
    schedule.next_ready()        # 0 (acme's first job)
    schedule.next_ready()        # 2 (beta's: acme already runs one)
    schedule.next_ready()        # None until one ends
    schedule.finished(0, stopped=False)
    schedule.next_ready()        # 1

The rules, each a property of the data structure rather than of timing:

- An organisation's jobs run one after another, in manifest order (its onboarding before its
  payroll, as the manifest lists them).
- Jobs of one *lane* (one token) never run at the same time: each run has its own limiter,
  so two at once would together exceed the token's limit.
- Fairness: organisations take turns. After an organisation's job starts, the others that
  have a job ready go first, so an organisation with 50 jobs cannot starve the rest.
- A job that stopped (anything but finishing its rows) skips its organisation's later jobs:
  a payroll sent after a stopped onboarding would only reject the employees not there yet.

Pure and synchronous: no clock, no I/O; ``bureau.local`` drives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """What the schedule needs to know of one job: its organisation and its lane."""

    org: str
    #: Jobs of one lane (e.g. one token's fingerprint) never run at the same time.
    lane: str


class Schedule:
    """The state of one bureau run's jobs: waiting, running, finished or skipped (by index)."""

    __slots__ = ("_busy_lanes", "_busy_orgs", "_queues", "_running", "_slots", "_turns")

    def __init__(self, slots: Sequence[Slot]) -> None:
        self._queues: dict[str, deque[int]] = {}
        for index, slot in enumerate(slots):
            self._queues.setdefault(slot.org, deque()).append(index)
        #: Organisations in the order of their next turn (first appearance to begin with).
        self._turns: deque[str] = deque(self._queues)
        self._running: dict[int, Slot] = {}
        self._busy_orgs: set[str] = set()
        self._busy_lanes: set[str] = set()
        self._slots = list(slots)

    def next_ready(self) -> int | None:
        """The index of the job to start now, marked running; ``None`` if none may start."""
        for _ in range(len(self._turns)):
            org = self._turns[0]
            self._turns.rotate(-1)  # whatever happens, this organisation's turn is over
            queue = self._queues[org]
            if not queue or org in self._busy_orgs:
                continue
            slot = self._slots[queue[0]]
            if slot.lane in self._busy_lanes:
                continue
            index = queue.popleft()
            self._running[index] = slot
            self._busy_orgs.add(org)
            self._busy_lanes.add(slot.lane)
            return index
        return None

    def finished(self, index: int, *, stopped: bool) -> list[int]:
        """Job ``index`` ended; if it ``stopped``, its organisation's waiting jobs are skipped.

        Returns the indexes skipped now.
        """
        slot = self._running.pop(index)
        self._busy_orgs.discard(slot.org)
        self._busy_lanes.discard(slot.lane)
        if not stopped:
            return []
        skipped = list(self._queues[slot.org])
        self._queues[slot.org].clear()
        return skipped

    @property
    def running(self) -> int:
        """How many jobs run now."""
        return len(self._running)


__all__ = ["Schedule", "Slot"]
