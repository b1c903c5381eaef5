"""What the engine tells whoever watches a run: the ``Reporter`` protocol, and a silent one.

::

    summary = await run_job(request, base_url=..., ca_bundle=..., token=..., reporter=mine)

The engine reports events (counts and statuses only, never a row's content) through a
``Reporter`` its caller gives it; with none it reports to ``SilentReporter``. Displays are the
caller's: the command line's progress bar, plain and JSON lines are in ``cli.progress``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from flexpay_batch.core.states import RowStatus

__all__ = ["Reporter", "RunStart", "SilentReporter"]


@dataclass(frozen=True, slots=True)
class RunStart:
    """What a run begins with, as ``Reporter.start`` is told it."""

    #: Rows in the file (None if unknown).
    total_rows: int | None
    #: Seconds the limit-based estimate gives what is left (None if unknown).
    estimate_seconds: float | None
    #: The write limit, rows per second.
    limit_per_second: float
    #: Rows already settled by earlier invocations (a resume).
    done_rows: int = 0


class Reporter(Protocol):
    """Progress events from the engine; implementations must never raise into the engine.

    Call order: ``start`` once, then any number of the row and rate events and ``message``,
    then ``finish`` once; ``close`` may follow anything (it is how a failed run tidies up).
    """

    def start(self, run: RunStart) -> None:
        """The run begins: its rows, estimate, limit and rows settled earlier (``RunStart``)."""

    def row_done(self, status: RowStatus) -> None:
        """A row reached its status for this invocation (``created``, ``rejected``, ...)."""

    def retrying(self, delta: int) -> None:
        """The number of rows retrying now changed by ``delta`` (+1 at a row's first retry,
        -1 when that row ends)."""

    def rate(self, current_per_second: float) -> None:
        """The observed throughput in rows per second."""

    def paused(self, until_epoch: float | None) -> None:
        """The server paused requests until ``until_epoch`` (epoch seconds), or no pause."""

    def message(self, text: str, level: int = logging.INFO) -> None:
        """A sentence for the operator; ``level`` is a ``logging`` level."""

    def finish(self, summary: Mapping[str, int]) -> None:
        """The run ended; ``summary`` maps each final status to its row count (the job's,
        earlier invocations included)."""

    def close(self) -> None:
        """Stop any live display; harmless after ``finish`` or before ``start``."""


class SilentReporter:
    """A ``Reporter`` that shows nothing: the engine's default when its caller gives none, and
    the base of reporters that show only some events (they override those, the rest stay
    silent)."""

    __slots__ = ()

    def start(self, run: RunStart) -> None:
        """Nothing to show."""

    def row_done(self, status: RowStatus) -> None:
        """Nothing to show."""

    def retrying(self, delta: int) -> None:
        """Nothing to show."""

    def rate(self, current_per_second: float) -> None:
        """Nothing to show."""

    def paused(self, until_epoch: float | None) -> None:
        """Nothing to show."""

    def message(self, text: str, level: int = logging.INFO) -> None:
        """Nothing to show."""

    def finish(self, summary: Mapping[str, int]) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to release."""
