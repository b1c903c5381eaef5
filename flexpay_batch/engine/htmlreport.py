"""``report.html``: one self-contained page per run that an operator can attach to a ticket.

::

    write_html_report(run_dir / "report.html", journal, summary, write_limit_per_second)

Free of personal data by construction: it is built from the journal (row numbers, states,
codes, fields, reasons, times: no names, ids of people, amounts or bank details) and the run's
counters. No reference column (external id) is shown, so rows are named by number only. No
script and no external resource: the rate chart is inline SVG, so the file opens offline and
in a mail client's viewer.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from flexpay_batch.core.files import open_private
from flexpay_batch.core.formatting import format_average, format_duration, summary_rows
from flexpay_batch.core.states import SUCCEEDED, RowStatus
from flexpay_batch.engine.request import RunSummary
from flexpay_batch.journal.store import Journal, RowRecord

REPORT_HTML_NAME: Final = "report.html"
#: Bars in the rate chart, and rejected rows listed (the rest are in rejects.csv).
MAX_BUCKETS: Final = 60
MAX_REJECTS: Final = 500


def rate_series(settled_at: Sequence[float], buckets: int = MAX_BUCKETS) -> list[float]:
    """Rows per second in ``buckets`` equal slices from the first to the last settled row."""
    if not settled_at:
        return []
    start, end = min(settled_at), max(settled_at)
    span = max(end - start, 1.0)
    count = max(1, min(buckets, int(span)))
    width = span / count
    bins = [0] * count
    for moment in settled_at:
        bins[min(count - 1, int((moment - start) / width))] += 1
    return [n / width for n in bins]


def write_html_report(
    path: Path, journal: Journal, summary: RunSummary, write_limit_per_second: float
) -> None:
    """Write ``report.html`` (0600) for the run whose journal is ``journal``."""
    # Two narrow queries, not a record per row: the chart needs only the settled rows'
    # times, the table only the first MAX_REJECTS problems.
    settled_at = journal.settled_times()
    problems, problem_count = journal.problem_rows(MAX_REJECTS)
    job = journal.job.summary()
    counts = {s.value: summary.journal_counts.get(s.value, 0) for s in RowStatus}
    series = rate_series(settled_at)
    this_run = sum(n for status, n in summary.counts.items() if status in SUCCEEDED)
    average = this_run / summary.elapsed if summary.elapsed > 0 else 0.0
    page = _PAGE.format(
        title=html.escape(f"flexpay-batch {job.kind} run {job.job_id}"),
        facts=_table(
            ("job", job.job_id),
            ("kind", job.kind),
            ("input file", Path(job.input_path).name),
            ("API", job.base_url),
            ("started", _iso(job.created_at)),
            ("this invocation", format_duration(summary.elapsed)),
            ("exit code", str(summary.exit_code)),
            ("stopped by", "" if summary.stopped is None else type(summary.stopped).__name__),
        ),
        counts=_table(*((label, str(n)) for label, n in summary_rows(counts))),
        traffic=_table(
            ("average this invocation", format_average(average, write_limit_per_second)),
            ("write limit", format_average(write_limit_per_second, write_limit_per_second)),
            ("429 responses", str(summary.throttled)),
            ("retries", str(summary.retries)),
        ),
        chart=_chart(series, write_limit_per_second),
        rejects=_rejects(problems, problem_count),
        messages="".join(f"<li>{html.escape(m)}</li>" for m in summary.messages) or "<li>none</li>",
    )
    with open_private(path, "w") as handle:
        handle.write(page)


def _table(*rows: tuple[str, str]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" for key, value in rows
    )
    return f"<table>{cells}</table>"


def _chart(series: Sequence[float], limit: float) -> str:
    """Rows per second as bars, the limit as a dashed line; in the limit's own unit."""
    if not series:
        return "<p>No row took effect yet.</p>"
    width, height = 600, 160
    top = max(max(series), limit) * 1.1 or 1.0
    bar = width / len(series)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - v / top * height:.1f}" '
        f'width="{max(bar - 1, 1):.1f}" height="{v / top * height:.1f}" fill="#4a7"/>'
        for i, v in enumerate(series)
    )
    y = height - limit / top * height
    line = (
        f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c33" '
        'stroke-dasharray="4 3"/>'
    )
    peak = format_average(max(series), limit)
    caption = (
        f"Rows that took effect over time (peak {html.escape(peak)}); dashed: the write "
        f"limit, {html.escape(format_average(limit, limit))}."
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f"{bars}{line}</svg><p>{caption}</p>"
    )


def _rejects(records: Iterable[RowRecord], total: int) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(value))}</td>"
            for value in (r.row, r.status.value, r.field or "", r.code or "", r.reason or "")
        )
        + "</tr>"
        for r in records
    )
    if not rows:
        return "<p>None.</p>"
    more = f"<p>{total - MAX_REJECTS} more in rejects.csv.</p>" if total > MAX_REJECTS else ""
    return (
        "<table><tr><th>row</th><th>status</th><th>field</th><th>code</th><th>reason</th></tr>"
        f"{rows}</table>{more}"
    )


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: .2em .6em; text-align: left; }}
</style></head><body>
<h1>{title}</h1>
<p>No personal data: rows are named by their number in the input file.</p>
<h2>Run</h2>{facts}
<h2>Rows</h2>{counts}
<h2>Rate</h2>{traffic}{chart}
<h2>Rejected and failed rows</h2>{rejects}
<h2>Messages</h2><ul>{messages}</ul>
</body></html>
"""

__all__ = ["REPORT_HTML_NAME", "rate_series", "write_html_report"]
