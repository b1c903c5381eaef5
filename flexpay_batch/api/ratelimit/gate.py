"""A shared "closed until loop time T" switch for a server-imposed pause.

    gate = Gate()
    gate.close_until(loop.time() + 5.0)  # Retry-After: 5
    await gate.wait_open()               # every waiter wakes on the same timer

One timer per gate, not one per waiter, so a thousand waiters of a paused class cost one
timer and all see the same reopening time.
"""

from __future__ import annotations

import asyncio


class Gate:
    """Open until ``close_until`` is called; then closed until that loop time passes.

    Must be used from one event loop. A later, earlier ``until`` never shortens a pause.
    """

    __slots__ = ("_handle", "_open", "until")

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._handle: asyncio.TimerHandle | None = None
        #: Loop time at which the gate reopens, ``None`` while it is open.
        self.until: float | None = None

    @property
    def is_open(self) -> bool:
        """True when no pause is in force (``wait_open`` would return at once)."""
        return self.until is None

    def close_until(self, until: float) -> None:
        """Close the gate until loop time ``until`` (or keep it closed longer if it already is)."""
        if self.until is not None and until <= self.until:
            return
        self.until = until
        self._open.clear()
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_at(until, self._reopen)

    def _reopen(self) -> None:
        self._handle = None
        self.until = None
        self._open.set()

    async def wait_open(self) -> None:
        """Return at once if open, else when the pause ends."""
        await self._open.wait()
