"""A picture of byte buffers (notebook 02's memmove): rows of byte cells."""
from __future__ import annotations

from typing import Sequence

from minios_lab.libc.format import Text, _to_bytes


def plot_buffers(rows: Sequence[tuple[str, Text]],
                 source: range = range(0), dest: range = range(0),
                 title: str = ""):
    """One row of byte cells per (label, buffer), for showing a copy.

    The first row is the buffer before, with the `source` cells shaded
    blue; the next rows are results, with the `dest` cells shaded orange.
    Returns a Figure.
    """
    import matplotlib.pyplot as plt
    width = max(len(_to_bytes(data, "row")) for _, data in rows)
    fig, ax = plt.subplots(figsize=(0.45 * width + 3.5,
                                    0.5 * len(rows) + 0.8))
    for y, (label, data) in enumerate(rows):
        for x, byte in enumerate(_to_bytes(data, "row")):
            shade = "#E8EEF7"
            if x in (dest if y else source):
                shade = "#DD8452" if y else "#8FB3DE"
            ax.add_patch(plt.Rectangle((x, -y - 0.8), 0.95, 0.7, color=shade))
            text = chr(byte) if 0x20 < byte < 0x7F else f"{byte:02x}"
            ax.text(x + 0.47, -y - 0.45, text, ha="center", va="center",
                    family="monospace", fontsize=10)
        ax.text(-0.3, -y - 0.45, label, ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.2, width)
    ax.set_ylim(-len(rows) - 0.1, 0.1)
    ax.set_xticks([i + 0.47 for i in range(width)], range(width), fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
