"""PNG plots for the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen before pyplot is imported
from matplotlib.axes import Axes

from .common import per_second_bins

BIN_SECONDS = 0.25


@dataclass
class Series:
    """One tool's admitted and refused (429) request times, monotonic seconds, sorted."""

    label: str
    admitted: list[float]
    refused: list[float] = field(default_factory=list)


@dataclass
class RatePanel:
    """One subplot: requests per second over time against the server's limit."""

    title: str
    limit: float
    series: list[Series]
    client_rate: float | None = None


def _draw_panel(axes: Axes, panel: RatePanel) -> None:
    for index, series in enumerate(panel.series):
        if not series.admitted:
            continue
        colour = f"C{index}"
        start = series.admitted[0]
        ok = per_second_bins(series.admitted, start, BIN_SECONDS)
        axes.plot([i * BIN_SECONDS for i in range(len(ok))], ok, color=colour, label=series.label)
        refused = [t for t in series.refused if t >= start]
        if refused:
            bad = per_second_bins(refused, start, BIN_SECONDS)
            xs = [i * BIN_SECONDS for i in range(len(bad))]
            axes.plot(xs, bad, color=colour, ls=":", lw=1, label=f"{series.label}: 429s/s")
    axes.axhline(panel.limit, color="black", lw=1.2, label=f"server limit {panel.limit:g}/s")
    if panel.client_rate is not None and panel.client_rate != panel.limit:
        axes.axhline(
            panel.client_rate,
            color="grey",
            ls="--",
            lw=1,
            label=f"client set to {panel.client_rate:g}/s",
        )
    axes.set_title(panel.title, fontsize=10)
    axes.set_ylabel(f"requests/s ({int(BIN_SECONDS * 1000)} ms bins)")
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)


def rate_figure(path: Path, panels: list[RatePanel], caption: str) -> Path:
    """Stacked rate-over-time panels; dotted lines are 429s per second in the same colour."""
    fig, axes_list = plt.subplots(len(panels), 1, figsize=(9, 2.8 * len(panels)), squeeze=False)
    for axes, panel in zip(axes_list[:, 0], panels, strict=True):
        _draw_panel(axes, panel)
    axes_list[-1, 0].set_xlabel("seconds since the first write was admitted (server side)")
    fig.suptitle(caption, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bar_figure(path: Path, title: str, groups: dict[str, dict[str, float]], unit: str) -> Path:
    """Side-by-side bars: one subplot per metric (``groups``: metric → {label: value})."""
    fig, axes_list = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for axes, (metric, values) in zip(axes_list[0], groups.items(), strict=True):
        labels = list(values)
        bars = axes.bar(
            labels, [values[k] for k in labels], color=[f"C{i}" for i in range(len(labels))]
        )
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
        axes.set_title(metric, fontsize=10)
        axes.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title} ({unit})" if unit else title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
