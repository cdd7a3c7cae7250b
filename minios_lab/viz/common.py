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


def spaced_ticks(positions: list[int], span: int,
                 min_gap: float = 0.07) -> list[int]:
    """The positions to label on an axis of length `span`, first and last
    kept, dropping any closer than `min_gap` of the span to one kept."""
    ordered = sorted(set(positions))
    if len(ordered) <= 2:
        return ordered
    gap = min_gap * span
    kept = [ordered[0]]
    for p in ordered[1:-1]:
        if p - kept[-1] >= gap and ordered[-1] - p >= gap:
            kept.append(p)
    kept.append(ordered[-1])
    return kept


def plot_regions(regions: list[Region], title: str = "") -> Figure:
    """One horizontal strip, each region a coloured span; a legend names
    each (size and start), so that narrow regions need no label inside.
    Addresses label the axis where they are far enough apart to read."""
    ordered = sorted(regions, key=lambda r: r.start)
    fig, ax = plt.subplots(figsize=(10, 2.4), layout="constrained")
    top = max(r.end for r in regions)
    for i, region in enumerate(ordered):
        ax.barh(0, region.size, left=region.start, height=0.6,
                color=PALETTE[i % len(PALETTE)], edgecolor="black",
                label=f"{region.name}: {_kib(region.size)} at "
                      f"{region.start:#x}")
    ax.set_xlim(0, top)
    ax.set_ylim(-0.4, 0.4)
    ax.set_yticks([])
    ticks = spaced_ticks([r.start for r in ordered] + [top], top)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:#x}" for t in ticks], fontsize=7)
    ax.set_xlabel("virtual address", fontsize=8)
    fig.legend(loc="outside lower center", ncol=min(len(ordered), 3),
               fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return fig
