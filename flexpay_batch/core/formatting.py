"""How durations, rates and row counts read to a person: one wording for the progress line,
``status`` and ``report.html``.

Pure functions of numbers and the row-state vocabulary (``core.states``); no I/O::

    format_duration(232)                  # "3m52s"
    format_rate(1.64, 100 / 60)           # "98.4/min of 100/min"
    summary_rows({"created": 3})          # [("created", 3), ("already existed", 0), ...]
"""

from __future__ import annotations

from collections.abc import Mapping

from flexpay_batch.core.states import RowStatus

__all__ = [
    "SUMMARY_ORDER",
    "format_average",
    "format_duration",
    "format_number",
    "format_rate",
    "rate_unit",
    "summary_rows",
]


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``"1h02m"``, ``232`` → ``"3m52s"``, ``7.4`` → ``"7s"``, ``None`` → ``"?"``."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3600.0))


def rate_unit(limit_per_second: float) -> tuple[str, float]:
    """The limit's own unit and its factor from per second: the first of s, min, h in which
    the limit is a whole number of at least one (a 100/min limit reads ``100/min``, not
    ``1.67/s``; 100/h reads ``100/h``, not ``0.03/s``), else the first in which it is >= 1."""
    for unit, factor in _UNITS:
        scaled = limit_per_second * factor
        if scaled >= 1.0 and abs(scaled - round(scaled)) < 1e-6 * scaled:
            return unit, factor
    for unit, factor in _UNITS:
        if limit_per_second * factor >= 1.0:
            return unit, factor
    return _UNITS[-1]


def format_number(value: float) -> str:
    """A rate figure: three significant figures at most, no trailing zeros (1000, 100, 16.7,
    1.62, 0.5)."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def format_rate(rate: float, limit: float) -> str:
    """``rate`` against ``limit`` (both per second) in the limit's unit: ``98.4/min of 100/min``."""
    unit, factor = rate_unit(limit)
    return f"{format_number(rate * factor)}/{unit} of {format_number(limit * factor)}/{unit}"


def format_average(rate: float, limit: float) -> str:
    """An average rate in the limit's unit: ``98.4/min``."""
    unit, factor = rate_unit(limit)
    return f"{format_number(rate * factor)}/{unit}"


#: The end-of-run order: what took effect (and how), then what did not, then what is open.
SUMMARY_ORDER: tuple[RowStatus, ...] = (
    RowStatus.CREATED,
    RowStatus.ALREADY_EXISTED,
    RowStatus.REPLAYED,
    RowStatus.REJECTED,
    RowStatus.FAILED,
    RowStatus.PENDING,
    RowStatus.IN_FLIGHT,
)
_ALWAYS_SHOWN = frozenset(SUMMARY_ORDER[:5])


def summary_rows(summary: Mapping[str, int]) -> list[tuple[str, int]]:
    """The end-of-run counts as (label, rows): created, already existed, replayed, rejected
    and failed always (a zero says something too), open states only when non-zero."""
    rows = [
        (status.value.replace("_", " "), summary.get(status.value, 0))
        for status in SUMMARY_ORDER
        if status in _ALWAYS_SHOWN or summary.get(status.value, 0)
    ]
    known = {status.value for status in SUMMARY_ORDER}
    rows += [(name, count) for name, count in summary.items() if name not in known and count]
    return rows
