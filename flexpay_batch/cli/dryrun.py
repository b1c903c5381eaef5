"""What ``onboard --dry-run`` and ``payroll --dry-run`` print: the engine's ``DryRunResult``.

::

    exit_code = show_dry_run(request, json_output=False)

On stdout, what the run would do: the pre-flight's sentences, one line of what would be sent
and rejected, then what the run's finish would do; with ``--json``, one JSON object saying the
same (``dry_run_json``) and nothing else. On stderr, the sandbox banner and each
rejected row (the first ``MAX_SHOWN``, then how many more): plain lines, or with
``--json-logs`` JSON lines, a ``rejected`` event per row (file, row, line, field, code, reason).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from flexpay_batch.cli.progress import banner_printer, json_line
from flexpay_batch.cli.progress_base import Clock
from flexpay_batch.engine.dryrun import DryRunResult, dry_run
from flexpay_batch.engine.request import RunRequest
from flexpay_batch.input.validation import format_rejection


def show_dry_run(request: RunRequest, *, json_output: bool = False) -> int:
    """Dry-run ``request``, print what it found (``json_output``: as one JSON object on
    stdout); the exit code the real run would have."""
    result = dry_run(request, announce=banner_printer(request.json_logs, sys.stderr))
    if json_output:
        _write_rejections(result, sys.stderr, json_logs=request.json_logs, wall_clock=time.time)
        print(json.dumps(dry_run_json(result)), flush=True)
    else:
        write_dry_run(result, out=sys.stdout, err=sys.stderr, json_logs=request.json_logs)
    return result.exit_code


def dry_run_json(result: DryRunResult) -> dict[str, Any]:
    """The result as plain data for ``--json``: counts and sentences (the rejected rows go
    to stderr, as without ``--json``)."""
    return {
        "dry_run": True,
        "file": result.source,
        "kind": result.kind,
        "exit_code": result.exit_code,
        "rows": result.rows,
        "would_send": dict(result.requests),
        "unchanged": result.unchanged,
        "rejected": result.rejected,
        "before_rows": list(result.preflight),
        "finish": {
            "messages": list(result.finish.messages),
            "incomplete": result.finish.incomplete,
        },
    }


def write_dry_run(
    result: DryRunResult,
    *,
    out: TextIO,
    err: TextIO,
    json_logs: bool = False,
    wall_clock: Clock = time.time,
) -> None:
    """The result as lines: what would be done on ``out``, the rejected rows on ``err`` (as
    JSON lines with ``json_logs``; ``wall_clock`` gives their ``ts``)."""
    for sentence in result.preflight:
        print(sentence, file=out)
    _write_rejections(result, err, json_logs=json_logs, wall_clock=wall_clock)
    print(summary_line(result), file=out)
    for message in result.finish.messages:
        print(message, file=out)


def _write_rejections(
    result: DryRunResult, err: TextIO, *, json_logs: bool, wall_clock: Clock
) -> None:
    """Each rejected row the result holds, then how many more there are."""
    unshown = result.rejected - len(result.rejections)
    more = f"... and {unshown} more rejected rows"
    if not json_logs:
        for rejection in result.rejections:
            print(format_rejection(rejection, result.source), file=err)
        if unshown > 0:
            print(more, file=err)
        return
    for rejection in result.rejections:
        fields = asdict(rejection)
        err.write(json_line("rejected", wall_clock(), file=result.source, **fields))
    if unshown > 0:
        err.write(json_line("message", wall_clock(), level="warning", message=more))


def summary_line(result: DryRunResult) -> str:
    """``dry run, nothing sent: people.csv (onboarding) 500 rows: would send 494 x POST
    /employees, would reject 6``."""
    sends = ", ".join(f"{n} x {label}" for label, n in result.requests.items()) or "nothing"
    same = f", {result.unchanged} already on the server as in the file" if result.unchanged else ""
    return (
        f"dry run, nothing sent: {result.source} ({result.kind}) {result.rows} rows: would send "
        f"{sends}{same}, would reject {result.rejected}"
    )


__all__ = ["dry_run_json", "show_dry_run", "summary_line", "write_dry_run"]
