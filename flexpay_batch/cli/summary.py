"""``--json``: one JSON summary of a run on stdout, for scripts.

Progress and messages stay on stderr (``--json-logs`` makes those JSON too), so stdout holds
this one object and nothing else. No personal data: counts, the directory, the error's class
and its (redacted) message.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from flexpay_batch.core.redact import redact_text
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.request import RunSummary


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """The summary as plain data: the job's counts per status and this invocation's."""
    return {
        "run_dir": str(summary.run_dir),
        "exit_code": summary.exit_code,
        "counts": {s.value: summary.journal_counts.get(s.value, 0) for s in RowStatus},
        "this_invocation": {str(k): v for k, v in sorted(summary.counts.items())},
        "elapsed_seconds": round(summary.elapsed, 3),
        "retries": summary.retries,
        "throttled_429": summary.throttled,
        "stopped": summary.stopped_json(),
        "messages": [redact_text(message) for message in summary.messages],
        "files": {
            name: str(summary.run_dir / name)
            for name in ("results.csv", "rejects.csv", "report.json")
        },
    }


def print_json_summary(summary: RunSummary) -> None:
    """Print ``summary`` as one JSON line on stdout."""
    print(json.dumps(summary_json(summary)), file=sys.stdout, flush=True)
