"""What the bureau's runs report to: one combined display of every job (``Board``).

The displays themselves (a live board, plain lines, JSON lines) are the command line's
(``cli.bureau_progress``); the bureau only needs this protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from flexpay_batch.bureau.outcome import JobLabel, JobOutcome
from flexpay_batch.engine.progress import Reporter


class Board(Protocol):
    """The combined display; implementations never raise into the run."""

    def open(self) -> None:
        """Begin showing (the live board starts drawing)."""

    def reporter(self, label: JobLabel) -> Reporter:
        """The ``Reporter`` the run of the job ``label`` names reports through."""

    def ended(self, outcome: JobOutcome) -> None:
        """A job ended (or was skipped)."""

    def message(self, text: str, level: int = logging.INFO) -> None:
        """A sentence about the whole run."""

    def close(self, outcomes: Sequence[JobOutcome]) -> None:
        """Stop drawing and show the end-of-run table of ``outcomes``."""


__all__ = ["Board"]
