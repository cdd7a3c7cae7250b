"""Pictures for the exceptions chapter: stack frames and the trap table.

Pure functions from plain data (the layouts and table entries of
:mod:`minios_lab.traps`) to matplotlib Figures.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from minios_lab.traps import Slot, TrapEntry
from minios_lab.viz.common import PALETTE

SOURCE_COLOURS = {
    "cpu": PALETTE[0],       # what the CPU itself would push
    "errcode": PALETTE[1],   # the error code (Xen's, or the stub's 0)
    "xen": PALETTE[3],       # rcx and r11, pushed by Xen for sysret
    "stub": PALETTE[2],      # the vector, pushed by the stub
    "saved": PALETTE[7],     # general registers, pushed by the stub
}
SOURCE_LABELS = {
    "cpu": "hardware-shaped frame (Xen writes it)",
    "errcode": "error code (Xen's, or 0 from the stub)",
    "xen": "rcx, r11: Xen's extra words",
    "stub": "vector (pushed by the stub)",
    "saved": "registers saved by the stub",
}
WORD = 8


def _column(ax, slots: Sequence[Slot], x: float, shift: int,
            title: str) -> None:
    """Draw slots as boxes, offset `shift` bytes up: higher is higher."""
    for slot in slots:
        y = shift + slot.offset
        ax.add_patch(Rectangle((x, y), 1.6, WORD * 0.95, edgecolor="black",
                               facecolor=SOURCE_COLOURS[slot.source]))
        ax.text(x + 0.8, y + WORD * 0.45, slot.name, ha="center",
                va="center", fontsize=8, color="white")
    top = shift + max(s.offset for s in slots)
    ax.text(x + 0.8, top + WORD * 1.4, title, ha="center", fontsize=9)


def _pointer(ax, x: float, y: float, text: str) -> None:
    ax.annotate(text, xy=(x, y + WORD * 0.45), xytext=(x - 1.5, y + 2),
                fontsize=8, ha="right", va="center",
                arrowprops=dict(arrowstyle="->"))


def plot_frames(bounce: Sequence[Slot], regs: Sequence[Slot]) -> Figure:
    """Xen's bounce frame at entry, and the pt_regs the stub makes of it.

    Both columns are the same stack memory, side by side at the same
    heights, higher addresses at the top (the stack grows down): ss is the
    first word Xen wrote in both. The stub pops rcx and r11 and pushes the
    vector (and a 0 error code) and the registers over them.
    """
    top_bounce = max(s.offset for s in bounce)
    top = max(s.offset for s in regs)
    shift = top - top_bounce
    fig, ax = plt.subplots(figsize=(8, 7.5))
    _column(ax, bounce, 0, shift, "Xen's bounce frame\nat the stub's entry")
    _column(ax, regs, 4, 0, "struct pt_regs\nafter the stub")
    _pointer(ax, 0, shift, "rsp at entry")
    _pointer(ax, 4, 0, "rsp = regs\n(do_exception's\nargument)")
    ax.annotate("", xy=(6.2, 0), xytext=(6.2, top + WORD),
                arrowprops=dict(arrowstyle="->", color="grey"))
    ax.text(6.4, top / 2, "stack grows down (higher addresses above)",
            rotation=90, va="center", fontsize=8, color="grey")
    ax.legend(handles=[Patch(color=SOURCE_COLOURS[k], label=v)
                       for k, v in SOURCE_LABELS.items()],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
              fontsize=8, frameon=False)
    ax.set_xlim(-3.2, 7)
    ax.set_ylim(-12, top + WORD * 3.5)
    ax.axis("off")
    fig.tight_layout()
    return fig


TABLE_COLOURS = {
    "dpl0": PALETTE[0],
    "dpl3": PALETTE[2],
    "xen": PALETTE[8],
    "reserved": "#DDDDDD",
}
# Vectors below 20 that the guest does not register, and why.
NOT_REGISTERED = {2: "NMI (own callback)", 8: "#DF (Xen's)",
                  18: "#MC (Xen's)"}


def _cell_kind(vector: int, entries: dict[int, TrapEntry]) -> str:
    if vector in entries:
        return "dpl3" if entries[vector].dpl == 3 else "dpl0"
    return "xen" if vector in NOT_REGISTERED else "reserved"


def plot_trap_table(table: Sequence[TrapEntry], vectors: int = 32) -> Figure:
    """The virtual IDT as a row of cells, one per vector.

    Colour says who handles the vector (the guest with DPL 0 or 3, Xen, or
    nobody: reserved); a dot marks the entries that mask events on entry.
    """
    entries = {e.vector: e for e in table}
    per_row = 16
    fig, ax = plt.subplots(figsize=(11, 3.2))
    for vector in range(vectors):
        row, col = divmod(vector, per_row)
        y = -row * 1.6
        kind = _cell_kind(vector, entries)
        ax.add_patch(Rectangle((col, y), 0.95, 0.95, edgecolor="black",
                               facecolor=TABLE_COLOURS[kind]))
        label = entries[vector].mnemonic if vector in entries else ""
        ax.text(col + 0.47, y + 0.6, str(vector), ha="center", fontsize=8)
        ax.text(col + 0.47, y + 0.25, label, ha="center", fontsize=7)
        if vector in entries and entries[vector].masks_events:
            ax.plot(col + 0.85, y + 0.85, "o", color="black", markersize=4)
    ax.legend(handles=[
        Patch(color=TABLE_COLOURS["dpl0"], label="guest handler, DPL 0"),
        Patch(color=TABLE_COLOURS["dpl3"], label="guest handler, DPL 3"),
        Patch(color=TABLE_COLOURS["xen"], label="not in the table (Xen)"),
        Patch(color=TABLE_COLOURS["reserved"], label="reserved / unused"),
        plt.Line2D([], [], marker="o", color="black", linestyle="",
                   label="masks events on entry")],
        loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=5, fontsize=8,
        frameon=False)
    rows = (vectors + per_row - 1) // per_row
    ax.set_xlim(-0.1, per_row)
    ax.set_ylim(-(rows - 1) * 1.6 - 0.3, 1.1)
    ax.set_title("the trap table given to HYPERVISOR_set_trap_table")
    ax.axis("off")
    fig.tight_layout()
    return fig
