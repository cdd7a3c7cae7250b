"""Plots of page tables: a virtual address, a walk, the tree, the v->m map.

Pure functions from the plain data of :mod:`minios_lab.pagetable` (an
address, a :class:`~minios_lab.pagetable.Walk`, a
:class:`~minios_lab.pagetable.Snapshot`) to a matplotlib Figure, so the
same data always gives the same picture.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle

from minios_lab.pagetable import (PAGE_SHIFT, RW, Mapping, Snapshot, Table, Walk,
                        va_indexes)
from minios_lab.viz.common import PALETTE

LEVEL_COLOURS = {4: PALETTE[0], 3: PALETTE[1], 2: PALETTE[2], 1: PALETTE[4]}
OFFSET_COLOUR = PALETTE[7]
RW_COLOUR, RO_COLOUR = PALETTE[0], PALETTE[3]
# (name, first bit, last bit) of the fields of a 48-bit virtual address
FIELDS = [("L4 index", 47, 39), ("L3 index", 38, 30), ("L2 index", 29, 21),
          ("L1 index", 20, 12), ("offset", 11, 0)]


def _field_colour(name: str):
    return OFFSET_COLOUR if name == "offset" else LEVEL_COLOURS[int(name[1])]


def va_split(va: int) -> Figure:
    """The 48 bits of `va`: four 9-bit table indexes and a 12-bit offset."""
    fig, ax = plt.subplots(figsize=(10, 1.9))
    for (name, hi, lo), value in zip(FIELDS, va_indexes(va)):
        left = 47 - hi
        ax.add_patch(Rectangle((left, 0), hi - lo + 1, 1, edgecolor="black",
                               facecolor=_field_colour(name), alpha=0.8))
        shown = f"{value:#x}" if name == "offset" else str(value)
        ax.text(left + (hi - lo + 1) / 2, 0.5, f"{name}\n{shown}",
                ha="center", va="center", fontsize=9, color="white",
                fontweight="bold")
        ax.text(left, 1.08, str(hi), ha="left", fontsize=7)
    ax.text(48, 1.08, "0", ha="right", fontsize=7)
    ax.set_xlim(0, 48)
    ax.set_ylim(0, 1.4)
    ax.axis("off")
    ax.set_title(f"virtual address {va:#x}", fontsize=10)
    fig.tight_layout()
    return fig


def walk_figure(walk: Walk) -> Figure:
    """The walk level by level: each table a column of 512 slots, the slot
    used marked, an arrow to the table (or page) its entry names."""
    fig, ax = plt.subplots(figsize=(11, 4))
    for col, step in enumerate(walk.steps):
        _draw_table(ax, col * 2.5, step.level, step.table_mfn)
        y = 1 - (step.index + 0.5) / 512
        ax.plot([col * 2.5, col * 2.5 + 1], [y, y], color="black", lw=2.5)
        label = (f"[{step.index}] = {step.entry:#x}\n{' '.join(step.flags)}"
                 if step.present else f"[{step.index}] = 0: not present")
        ax.text(col * 2.5 + 0.5, -0.08, label, ha="center", va="top",
                fontsize=7.5)
        if step.present:
            target = (col + 1) * 2.5
            ax.add_patch(FancyArrowPatch((col * 2.5 + 1, y), (target, 0.5),
                                         arrowstyle="-|>", mutation_scale=12,
                                         color="black"))
    if walk.present:
        _draw_page(ax, 4 * 2.5, walk)
    ax.set_xlim(-0.3, 11.6)
    ax.set_ylim(-0.45, 1.25)
    ax.axis("off")
    ax.set_title(f"walk of {walk.va:#x}", fontsize=10)
    fig.tight_layout()
    return fig


def _draw_table(ax, x: float, level: int, mfn: int) -> None:
    ax.add_patch(Rectangle((x, 0), 1, 1, facecolor=LEVEL_COLOURS[level],
                           alpha=0.25, edgecolor="black"))
    ax.text(x + 0.5, 1.04, f"L{level} table\nmfn {mfn:#x}", ha="center",
            va="bottom", fontsize=8)
    ax.text(x - 0.04, 1, "0", ha="right", va="center", fontsize=6)
    ax.text(x - 0.04, 0, "511", ha="right", va="center", fontsize=6)


def _draw_page(ax, x: float, walk: Walk) -> None:
    ax.add_patch(Rectangle((x, 0), 1, 1, facecolor=OFFSET_COLOUR, alpha=0.25,
                           edgecolor="black"))
    y = 1 - (walk.va & 0xFFF) / 4096
    ax.plot([x, x + 1], [y, y], color="black", lw=2.5)
    pfn = "?" if walk.pfn is None else f"{walk.pfn:#x}"
    ax.text(x + 0.5, 1.04, f"page\nmfn {walk.mfn:#x} (pfn {pfn})",
            ha="center", va="bottom", fontsize=8)
    ax.text(x + 0.5, -0.08, f"offset {walk.va & 0xFFF:#x}\nmachine address "
            f"{walk.machine_address:#x}", ha="center", va="top", fontsize=7.5)


# --- the tree ---------------------------------------------------------------------

def _span(level: int) -> int:
    return 1 << (PAGE_SHIFT + 9 * level)


def _children(snap: Snapshot) -> dict[tuple[int, int], list[Table]]:
    """(level, va) of a table -> the tables it points to, in va order."""
    kids: dict[tuple[int, int], list[Table]] = {}
    for table in sorted(snap.tables, key=lambda t: (t.level, t.va)):
        if table.level < 4:
            parent_va = table.va - table.va % _span(table.level + 1)
            kids.setdefault((table.level + 1, parent_va), []).append(table)
    return kids


def tree(snap: Snapshot, max_l1: int = 6, title: str = "") -> Figure:
    """The present tables, root on the left, with the range each L1 maps.

    Under each L2 at most `max_l1` L1 tables are drawn; the others are
    counted in a "+N more" box.
    """
    kids = _children(snap)
    rows: list[tuple[int, str, int]] = []      # (level, label, depth)

    def visit(table: Table) -> None:
        rows.append((table.level, _table_label(table), 4 - table.level))
        children = kids.get((table.level, table.va), [])
        shown = children if table.level != 2 else children[:max_l1]
        for child in shown:
            visit(child)
        if len(children) > len(shown):
            rows.append((1, f"+{len(children) - len(shown)} more L1 tables",
                         3))

    root = next(t for t in snap.tables if t.level == 4)
    visit(root)
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 0.8))
    for y, (level, label, depth) in enumerate(rows):
        ax.text(depth * 0.9, -y, label, fontsize=8, va="center",
                bbox=dict(boxstyle="round", facecolor=LEVEL_COLOURS[level],
                          alpha=0.3))
    ax.set_xlim(-0.1, 7)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(title or f"{len(snap.tables)} tables, "
                 f"{snap.mapped_pages} pages mapped", fontsize=10)
    fig.tight_layout()
    return fig


def _table_label(table: Table) -> str:
    end = table.va + _span(table.level)
    text = (f"L{table.level}  mfn {table.mfn:#x} (pfn {table.pfn:#x})  "
            f"va {table.va:#x}-{end:#x}")
    count = len(table.entries)
    if table.level == 1:
        return text + f": {count} page{'s' * (count != 1)}"
    return text + f": {count} entr{'ies' if count != 1 else 'y'}"



# --- virtual to machine -------------------------------------------------------------

def _draw_runs(ax, mappings: list[Mapping]) -> None:
    for m in mappings:
        vpn = m.va >> PAGE_SHIFT
        style = (dict(color=RW_COLOUR, lw=2) if m.flags & RW else
                 dict(color=RO_COLOUR, lw=3))
        ax.plot([vpn, vpn + m.pages - 0.2], [m.mfn, m.mfn + m.pages - 0.2],
                solid_capstyle="butt", marker="|", markersize=5, **style)
    ax.set_xlabel("virtual page number (va >> 12)")


def v2m(mappings: list[Mapping], title: str = "virtual page -> machine frame",
        zoom_pages: Optional[int] = None) -> Figure:
    """Each run of mapped pages as a segment from (virtual page, mfn);
    writable runs blue, read-only ones red. With `zoom_pages`, a second
    panel shows the first `zoom_pages` virtual pages of the runs, where a
    run is wide enough to see as a segment."""
    panels = 2 if zoom_pages else 1
    fig, axes = plt.subplots(1, panels, squeeze=False, layout="constrained",
                             figsize=(9 + 3 * (panels - 1), 4.5))
    overview = axes[0, 0]
    _draw_runs(overview, mappings)
    overview.set_ylabel("machine frame number")
    if zoom_pages:
        first = min(m.va for m in mappings) >> PAGE_SHIFT
        near = [m for m in mappings
                if (m.va >> PAGE_SHIFT) < first + zoom_pages]
        zoom = axes[0, 1]
        _draw_runs(zoom, near)
        zoom.set_xlim(first - 1, first + zoom_pages + 1)
        zoom.set_title(f"the first {zoom_pages} virtual pages", fontsize=9)
        overview.set_title("all pages: at this scale a run is a dot",
                           fontsize=9)
    fig.legend(handles=[Line2D([], [], color=RW_COLOUR, lw=2,
                               label="writable run"),
                        Line2D([], [], color=RO_COLOUR, lw=3,
                               label="read-only run (page tables)")],
               loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def in_range(mappings: list[Mapping], va_start: int,
             va_end: int) -> list[Mapping]:
    """The runs that start in [va_start, va_end)."""
    return [m for m in mappings if va_start <= m.va < va_end]
