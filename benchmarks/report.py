"""The Markdown report: machine, a summary of every check, then one section per figure."""

from __future__ import annotations

import time
from pathlib import Path

from .common import FigureResult, Scale

COMMAND = "python -m benchmarks"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary(figures: list[FigureResult]) -> list[str]:
    rows = [
        [figure.title, check.label, check.value, check.target, check.verdict]
        for figure in figures
        for check in figure.checks
    ]
    return _table(["figure", "measure", "measured", "target", "result"], rows)


def _section(figure: FigureResult) -> list[str]:
    lines = [f"## {figure.title}", "", figure.method, ""]
    lines += [*_table(figure.header, figure.rows), ""]
    lines += [
        f"- {c.label}: **{c.value}** (target {c.target}) — {c.verdict}" for c in figure.checks
    ]
    lines.append("")
    lines += [f"![{figure.title}]({name})" for name in figure.plots]
    if figure.notes:
        lines += ["", *figure.notes]
    return [*lines, ""]


def render(
    figures: list[FigureResult],
    *,
    scale: Scale,
    machine: dict[str, str],
    elapsed: float,
    analysis: str = "",
) -> str:
    """The whole report as Markdown; ``analysis`` (hand-written findings) is appended as is."""
    lines = [
        "# flexpay-batch benchmarks",
        "",
        f"Written by `{COMMAND}` ({scale.name} size) on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed:.0f} s. Every figure is a ratio of "
        "two measurements taken in this same run, against the bundled simulator on loopback "
        "(HTTPS, 127.0.0.1).",
        "",
        *_table(["machine", ""], [[k, v] for k, v in machine.items()]),
        "",
        "## Summary",
        "",
        *_summary(figures),
        "",
    ]
    for figure in figures:
        lines += _section(figure)
    if analysis:
        lines += [analysis.rstrip(), ""]
    return "\n".join(lines)


def write_report(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
