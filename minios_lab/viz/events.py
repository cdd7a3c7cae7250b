"""Plots of event channels: snapshot in, Figure out.

Pure functions of the plain data that :mod:`minios_lab.events` returns:

* :func:`plot_bitmaps`: the 2-level bitmaps. Each column is one word of
  evtchn_pending/evtchn_mask (64 ports, bit 0 at the top), and above each
  column sits its bit of evtchn_pending_sel, the selector word, which tells
  the upcall which columns to look at.
* :func:`plot_scan_order`: the order in which one upcall took its ports.
* :func:`plot_timeline`: operations left to right, one lane per port;
  raises, the stretches a port waited (masked, or events disabled) and the
  delivery that ended each wait.

Colours: a port that is masked is grey; pending and masked (held) orange;
pending and not masked (deliverable) red; events disabled is a blue band.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from minios_lab.events import WORD_BITS, Delivery, EventSnapshot, TraceEntry

CLEAR, MASKED, HELD, DELIVERABLE = 0, 1, 2, 3
STATE_COLOURS = ["#ffffff", "#d9d9d9", "#f0a030", "#c44e52"]
STATE_NAMES = ["clear", "masked", "pending, masked (held)",
               "pending, unmasked (deliverable)"]
SELECTOR_COLOUR = "#4c72b0"
DISABLED_COLOUR = "#dde6f5"


def port_states(snap: EventSnapshot) -> np.ndarray:
    """A (bit, word) array of CLEAR/MASKED/HELD/DELIVERABLE for every port."""
    pending = snap.grid("pending").T
    masked = snap.grid("mask").T
    state = np.where(masked == 1, MASKED, CLEAR)
    state = np.where((pending == 1) & (masked == 1), HELD, state)
    return np.where((pending == 1) & (masked == 0), DELIVERABLE, state)


def _legend(ax, extra: Sequence[Patch] = ()) -> None:
    handles = [Patch(facecolor=c, edgecolor="#999999", label=n)
               for c, n in zip(STATE_COLOURS, STATE_NAMES)]
    ax.legend(handles=handles + list(extra), loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _word_grid(ax, states: np.ndarray, words: Sequence[int],
               bits: int = WORD_BITS) -> None:
    """Draw bits 0..bits-1 of the columns `words` of `states`."""
    cmap = ListedColormap(STATE_COLOURS)
    ax.imshow(states[:bits, words], cmap=cmap, vmin=0, vmax=3,
              aspect="auto", interpolation="nearest")
    step = 1 if len(words) <= 16 else 8
    ax.set_xticks(range(0, len(words), step))
    ax.set_xticklabels([str(w) for w in words][::step])
    ax.set_xlabel("word of evtchn_pending / evtchn_mask")
    ax.set_ylabel("bit (port = 64 x word + bit)")
    ax.set_xticks(np.arange(-0.5, len(words)), minor=True)
    ax.tick_params(which="minor", length=0)
    ax.grid(which="minor", axis="x", color="#ffffff", linewidth=0.5)


def _selector_row(ax, selector: int, words: Sequence[int]) -> None:
    row = np.array([[selector >> w & 1 for w in words]])
    ax.imshow(row, cmap=ListedColormap(["#ffffff", SELECTOR_COLOUR]),
              vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_yticks([0])
    ax.set_yticklabels(["sel"])
    ax.set_xticks([])
    for i in range(len(words)):
        ax.axvline(i - 0.5, color="#cccccc", linewidth=0.5)


def plot_bitmaps(snap: EventSnapshot, words: Optional[Sequence[int]] = None,
                 title: str = "event channel bitmaps") -> Figure:
    """The selector word over the pending/mask words (all 64 by default)."""
    words = list(range(len(snap.pending)) if words is None else words)
    fig, (top, grid) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True,
        gridspec_kw=dict(height_ratios=[1, 16], hspace=0.05))
    _selector_row(top, snap.selector, words)
    _word_grid(grid, port_states(snap), words)
    top.set_title(f"{title}\nevtchn_upcall_pending {snap.upcall_pending}, "
                  f"evtchn_upcall_mask {snap.upcall_mask}")
    _legend(grid, [Patch(facecolor=SELECTOR_COLOUR,
                         label="selector bit set (row 'sel')")])
    return fig


def plot_scan_order(before: EventSnapshot, deliveries: Sequence[Delivery],
                    title: str = "scan order of one upcall") -> Figure:
    """Where each delivered port sat, numbered in the order it was taken.

    `before` is the snapshot just before the upcall. Only the words that
    the selector or a delivery touch are drawn, and only the bits up to the
    highest one delivered (at least 8).
    """
    ports = [d.port for d in deliveries]
    words = sorted({p // WORD_BITS for p in ports} |
                   {w for w in range(len(before.pending))
                    if before.selector >> w & 1})
    ys = [p % WORD_BITS for p in ports]
    bits = min(WORD_BITS, max([8] + [y + 2 for y in ys]))
    fig, (top, grid) = plt.subplots(
        2, 1, figsize=(3 + 1.2 * len(words), 1.5 + 0.35 * bits),
        sharex=True, gridspec_kw=dict(height_ratios=[1, bits / 2],
                                      hspace=0.05))
    _selector_row(top, before.selector, words)
    _word_grid(grid, port_states(before), words, bits)
    xs = [words.index(p // WORD_BITS) for p in ports]
    grid.plot(xs, ys, color="#333333", linewidth=1, zorder=2)
    grid.scatter(xs, ys, s=220, color="white", edgecolors="#333333",
                 zorder=3)
    for n, (x, y) in enumerate(zip(xs, ys), start=1):
        grid.text(x, y, str(n), ha="center", va="center", fontsize=8,
                  zorder=4)
    top.set_title(f"{title}: ports " + ", ".join(map(str, ports)))
    _legend(grid)
    return fig


def _disabled_spans(trace: Sequence[TraceEntry]) -> list[tuple[int, int]]:
    """(first step, last step) of each run of steps ending disabled."""
    spans, start = [], None
    if trace and trace[0].disabled:
        start = trace[0].step - 1
    for entry in trace:
        if entry.disabled_after and start is None:
            start = entry.step
        elif not entry.disabled_after and start is not None:
            spans.append((start, entry.step))
            start = None
    if start is not None:
        spans.append((start, trace[-1].step + 1))
    return spans


def _waits(trace: Sequence[TraceEntry], deliveries: Sequence[Delivery],
           port: int) -> list[tuple[int, int]]:
    """(raise step, delivery step) for each delivery of `port`."""
    raises = [e.step for e in trace if e.op == "raise" and e.port == port]
    waits = []
    for d in (d for d in deliveries if d.port == port):
        earlier = [s for s in raises if s <= d.step]
        if earlier:
            waits.append((earlier[0], d.step))
            raises = [s for s in raises if s > d.step]
    return waits


def plot_timeline(trace: Sequence[TraceEntry], deliveries: Sequence[Delivery],
                  ports: Sequence[int],
                  title: str = "events raised while held, delivered later"
                  ) -> Figure:
    """Steps left to right, one lane per port in `ports`."""
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(trace) + 2),
                                    1.2 + 0.6 * len(ports)))
    for start, end in _disabled_spans(trace):
        ax.axvspan(start + 0.5, end + 0.5, color=DISABLED_COLOUR, zorder=0)
    for lane, port in enumerate(ports):
        for entry in trace:
            if entry.masked_after(port):
                ax.broken_barh([(entry.step + 0.5, 1)], (lane - 0.3, 0.6),
                               color=STATE_COLOURS[MASKED], zorder=1)
        for start, end in _waits(trace, deliveries, port):
            ax.plot([start, end], [lane, lane], color=STATE_COLOURS[HELD],
                    linewidth=3, zorder=2)
        raised = [e for e in trace if e.op == "raise" and e.port == port]
        ax.scatter([e.step for e in raised], [lane] * len(raised),
                   marker="o", facecolors="white", edgecolors="#333333",
                   zorder=3, label="raised" if lane == 0 else None)
        got = [d.step for d in deliveries if d.port == port]
        ax.scatter(got, [lane] * len(got), marker="o",
                   color=STATE_COLOURS[DELIVERABLE], zorder=4,
                   label="delivered" if lane == 0 else None)
    _timeline_axes(ax, trace, ports)
    ax.set_title(title)
    return fig


def _timeline_axes(ax, trace: Sequence[TraceEntry], ports: Sequence[int]
                   ) -> None:
    ax.set_yticks(range(len(ports)))
    ax.set_yticklabels([f"port {p}" for p in ports])
    ax.set_ylim(-0.7, len(ports) - 0.3)
    ax.invert_yaxis()
    ax.set_xticks([e.step for e in trace])
    ax.set_xticklabels([e.op + ("" if e.port is None else f" {e.port}")
                        for e in trace], rotation=60, ha="right", fontsize=8)
    ax.set_xlim(0.5, (trace[-1].step if trace else 0) + 0.5)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Patch(facecolor=STATE_COLOURS[MASKED], label="port masked"),
                Patch(facecolor=DISABLED_COLOUR, label="events disabled"),
                Patch(facecolor=STATE_COLOURS[HELD], label="waiting")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False)
