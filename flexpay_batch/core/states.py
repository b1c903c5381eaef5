"""Where one input row stands: the one vocabulary of the journal, results.csv, progress and reports.

    RowStatus.CREATED in SUCCEEDED  # True: the row took effect (created, replayed, already existed)
    RowStatus.REJECTED in SETTLED   # True: a default resume leaves it alone

The journal stores these words in its ``rows.state`` column, ``results.csv`` prints them, the
progress line and the end-of-run table count them, and ``report.json`` keys its counts by them.
Nothing else in the package spells a row's state.

Lifecycle::

    pending ──▶ in_flight ──▶ created | replayed | already_existed   (succeeded: never moves)
                    │    └──▶ rejected   (moves only with --retry-rejected)
                    └───────▶ failed     (retried by resume; the outcome may be unknown)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class RowStatus(StrEnum):
    """One row's state; the value is the word stored and shown everywhere."""

    #: Read from the file, nothing sent yet (or the journal has no record of it).
    PENDING = "pending"
    #: Sent at least once; no outcome recorded yet. After a crash the effect is unknown.
    IN_FLIGHT = "in_flight"
    #: The server created it in this job.
    CREATED = "created"
    #: The server had already applied this request's idempotency key and replayed its answer.
    REPLAYED = "replayed"
    #: The object existed before this job's request (409 naming it, or found by look-up).
    ALREADY_EXISTED = "already_existed"
    #: Refused for a reason in the row (local validation or the server's 4xx); fix the file.
    REJECTED = "rejected"
    #: Given up for now (retries, deadline or an unusable reply); resume tries it again.
    FAILED = "failed"


#: The failure code of a row whose write got a 2xx that cannot be trusted (no usable id, an id
#: already given to another row, a reply over the size cap): it may have taken effect, so
#: resume looks it up on the server before sending it again.
UNVERIFIED: Final = "unverified"

SUCCEEDED: Final = frozenset({RowStatus.CREATED, RowStatus.REPLAYED, RowStatus.ALREADY_EXISTED})
SETTLED: Final = SUCCEEDED | {RowStatus.REJECTED}
#: States a journal transition may leave: succeeded rows never move; rejected ones only when
#: the operator asks (``--retry-rejected``).
OPEN: Final = frozenset({RowStatus.PENDING, RowStatus.IN_FLIGHT, RowStatus.FAILED})

#: Journal meta keys of the job's own work beyond its rows (a payroll run to submit): what is
#: left, one sentence (empty once done), and the next step (``RUN_DIR`` stands for the run
#: directory). The job writes them; ``status`` shows a job whose rows are all settled but
#: whose work is left as ``incomplete``, not ``finished``.
META_UNFINISHED_WORK: Final = "unfinished_work"
META_NEXT_STEP: Final = "next_step"

__all__ = [
    "META_NEXT_STEP",
    "META_UNFINISHED_WORK",
    "OPEN",
    "SETTLED",
    "SUCCEEDED",
    "UNVERIFIED",
    "RowStatus",
]
