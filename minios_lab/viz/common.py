"""Plots shared by the chapters: pure functions from plain data to Figures.

Nothing here touches the kernel; every function takes data (a snapshot, a
list of regions) and returns a matplotlib Figure, so the same call gives
the same picture in a notebook, a test or a script.
"""
from __future__ import annotations

from dataclasses import dataclass



import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3",
           "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]


@dataclass(frozen=True)
class Region:
    """A named range of addresses [start, end)."""

    name: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def plot_regions(regions: list[Region], title: str = "") -> Figure:
    """One horizontal strip: each region a coloured span, labelled below."""
    fig, ax = plt.subplots(figsize=(10, 2.2))
    top = max(r.end for r in regions)
    for i, region in enumerate(sorted(regions, key=lambda r: r.start)):
        ax.barh(0, region.size, left=region.start, height=0.6,
                color=PALETTE[i % len(PALETTE)], edgecolor="black")
        ax.text(region.start + region.size / 2, -0.45 - 0.3 * (i % 2),
                f"{region.name}\n{_kib(region.size)}", ha="center",
                va="top", fontsize=8)
    ax.set_xlim(0, top)
    ax.set_ylim(-1.4, 0.5)
    ax.set_yticks([])
    ticks = sorted({r.start for r in regions} | {top})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:#x}" for t in ticks], rotation=30, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_title(title, fontsize=10, pad=24)
    fig.tight_layout()
    return fig
