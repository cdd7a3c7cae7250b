"""Plots of the console ring: snapshot in, Figure out.

Pure functions of the plain data that :mod:`minios_lab.console_ring`
returns:

* :func:`plot_ring`: out[] as a grid of slots (ROW slots a row, slot 0 at
  the top left). Slots between out_cons and out_prod hold bytes written and
  not yet read (orange); the others are free (white, or grey where old
  bytes that were read already still sit). The next slot the guest writes
  (out_prod) and the next xenconsoled reads (out_cons) are marked.
* :func:`plot_indexes`: the history: out_prod and out_cons, counted from
  where they started (so a wrap of the 32-bit counters does not jump),
  and the bytes waiting between them, against the ring's size; yields,
  stalls and lost notifications are marked.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from minios_lab.console_ring import INDEX_MOD, RingSnapshot

ROW = 64
EMPTY, READ, WAITING = 0, 1, 2
COLOURS = ["#ffffff", "#d9d9d9", "#f0a030"]
NAMES = ["free (never written)", "free (read by xenconsoled)",
         "written, not yet read"]
PROD_COLOUR, CONS_COLOUR = "#c44e52", "#4c72b0"
MARKS = {"yield": ("|", "#55a868", "guest yields, xenconsoled runs"),
         "stalled": ("x", "#8172b2", "guest yields, xenconsoled stalled"),
         "lost": ("v", "#c44e52", "notification lost")}


def slot_states(snap: RingSnapshot) -> np.ndarray:
    """EMPTY/READ/WAITING for every slot of out[], in slot order."""
    state = np.where(np.frombuffer(snap.out, dtype=np.uint8) != 0, READ,
                     EMPTY)
    for i in range(snap.waiting):
        state[snap.slot(snap.cons + i)] = WAITING
    return state


def _grid_xy(slot: int) -> tuple[int, int]:
    return slot % ROW, slot // ROW


def plot_ring(snap: RingSnapshot, ax: Optional[plt.Axes] = None,
              title: Optional[str] = None) -> Figure:
    """out[] slot by slot, with out_prod and out_cons marked."""
    rows = snap.size // ROW
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 0.12 * rows + 1.0))
    else:
        fig = ax.figure
    grid = slot_states(snap).reshape(rows, ROW)
    ax.imshow(grid, cmap=ListedColormap(COLOURS), vmin=0, vmax=2,
              aspect="auto", interpolation="nearest")
    for index, colour, name in ((snap.prod, PROD_COLOUR, "out_prod"),
                                (snap.cons, CONS_COLOUR, "out_cons")):
        x, y = _grid_xy(snap.slot(index))
        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False,
                                   edgecolor=colour, linewidth=2,
                                   label=f"{name} {index:#010x} -> slot "
                                         f"{snap.slot(index)}"))
    ax.set_xticks(range(0, ROW, 8))
    ax.set_yticks(range(0, rows, 4))
    ax.set_yticklabels([str(r * ROW) for r in range(0, rows, 4)])
    ax.set_xlabel("slot within the row")
    ax.set_ylabel("first slot of the row")
    ax.set_title(title or f"out[]: {snap.waiting} of {snap.size} bytes "
                          f"waiting, {snap.free} free")
    handles = [Patch(facecolor=c, edgecolor="#999999", label=n)
               for c, n in zip(COLOURS, NAMES)]
    handles += ax.patches[-2:]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def unwrapped(values: list[int], start: int) -> np.ndarray:
    """32-bit counters as distances from `start`: no jump at the wrap."""
    return np.array([(v - start) % INDEX_MOD for v in values])


def plot_indexes(snap: RingSnapshot, ax: Optional[plt.Axes] = None,
                 title: str = "the ring's indexes as the guest writes"
                 ) -> Figure:
    """out_prod, out_cons and the bytes between them over the history."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.6))
    else:
        fig = ax.figure
    events = snap.history
    if not events:
        ax.text(0.5, 0.5, "no history yet", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    start = events[0].cons
    steps = [e.step for e in events]
    prod = unwrapped([e.prod for e in events], start)
    cons = unwrapped([e.cons for e in events], start)
    ax.step(steps, prod, where="post", color=PROD_COLOUR, label="out_prod")
    ax.step(steps, cons, where="post", color=CONS_COLOUR, label="out_cons")
    ax.fill_between(steps, cons, prod, step="post", color=COLOURS[WAITING],
                    alpha=0.35, label="waiting (out_prod - out_cons)")
    ax.step(steps, cons + snap.size, where="post", color="#999999",
            linestyle="--", label="out_cons + ring size: the writer's limit")
    for op, (marker, colour, name) in MARKS.items():
        xs = [e.step for e in events if e.op == op]
        ys = [prod[i] for i, e in enumerate(events) if e.op == op]
        if xs:
            ax.scatter(xs, ys, marker=marker, color=colour, zorder=3,
                       label=name)
    ax.set_xlabel("event (write, notify, yield, consume, ...)")
    ax.set_ylabel(f"bytes since index {start:#x}")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    fig.tight_layout()
    return fig
