"""Plots of the page allocator and of xmalloc: snapshot in, Figure out.

Every function here is pure: it takes the plain data that
:mod:`minios_lab.mm` returns (a PoolSnapshot, a HeapSnapshot, a list of
points) and draws it, so the same data always gives the same picture.

Colours: free pages are coloured by the order of the free chunk they belong
to (light for small chunks, dark for large ones), used pages red, the
allocator's own header and bitmap dark grey, pages outside the allocator
light grey.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from minios_lab.mm import (PAGE_SIZE, BenchPoint, Block, BlockKind, FragmentationPoint,
                 HeapSnapshot, PageState, PoolSnapshot, Step)

RESERVED_COLOUR = "#d9d9d9"
META_COLOUR = "#4d4d4d"
USED_COLOUR = "#c44e52"
SPLIT_COLOUR = "#ffffff"
HEADER_COLOUR = "#222222"
SLACK_COLOUR = "#f2b5b7"
HEAP_FREE_COLOUR = "#55a868"


def order_colour(order: int, max_order: int) -> tuple[float, ...]:
    """The colour of a free chunk of `order` in a pool whose largest is
    `max_order`."""
    return colormaps["YlGnBu"](0.25 + 0.7 * order / max(max_order, 1))


def _page_colours(snap: PoolSnapshot) -> np.ndarray:
    """An RGB colour for every page."""
    rgb = np.ones((snap.nr_pages, 3))
    fixed = {PageState.RESERVED: RESERVED_COLOUR, PageState.META: META_COLOUR,
             PageState.USED: USED_COLOUR}
    for state, colour in fixed.items():
        rgb[snap.state == state] = _rgb(colour)
    for order in range(snap.max_order + 1):
        rgb[snap.order == order] = order_colour(order, snap.max_order)[:3]
    return rgb


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def _outline(ax, pfn: int, pages: int, columns: int) -> None:
    """Draw a box around the chunk of `pages` pages at pfn."""
    row, col = divmod(pfn, columns)
    width, height = min(pages, columns), max(1, pages // columns)
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), width, height, fill=False,
                           linewidth=0.8, edgecolor="black"))


def _legend_handles(snaps: PoolSnapshot | Sequence[PoolSnapshot]
                    ) -> list[Patch]:
    """A patch for each colour the pages of `snaps` (one or several
    snapshots of the same pool) show."""
    snaps = [snaps] if isinstance(snaps, PoolSnapshot) else list(snaps)
    fixed = [(PageState.RESERVED, RESERVED_COLOUR, "reserved"),
             (PageState.META, META_COLOUR, "allocator's own"),
             (PageState.USED, USED_COLOUR, "allocated")]
    handles = [Patch(color=colour, label=label) for state, colour, label
               in fixed if any((s.state == state).any() for s in snaps)]
    orders = sorted({k for s in snaps for k, pfns in s.free_chunks.items()
                     if pfns})
    top = snaps[0].max_order
    handles += [Patch(color=order_colour(k, top),
                      label=f"free, order {k} ({1 << k} page"
                            f"{'s' * (k > 0)})") for k in orders]
    return handles


def default_columns(nr_pages: int) -> int:
    """Pages per row: a power of two near twice the square root, so that
    aligned chunks stay whole within rows (or fill whole rows)."""
    return max(16, 1 << round(np.log2(2 * np.sqrt(nr_pages))))


def draw_pages(ax, snap: PoolSnapshot, columns: int) -> None:
    """The pages of `snap` as a grid of `columns` per row, chunks outlined
    when there are few enough to see."""
    rows = -(-snap.nr_pages // columns)
    grid = np.ones((rows * columns, 3))
    grid[: snap.nr_pages] = _page_colours(snap)
    ax.imshow(grid.reshape(rows, columns, 3), aspect="auto",
              interpolation="nearest")
    if snap.nr_pages <= 4096:
        for order, pfns in snap.free_chunks.items():
            for pfn in pfns:
                _outline(ax, pfn, 1 << order, columns)
        for pfn, order in snap.allocations.items():
            _outline(ax, pfn, 1 << order, columns)
    ax.set_yticks(range(rows) if rows <= 16 else [])
    ax.set_yticklabels([f"pfn {r * columns}" for r in range(rows)]
                       if rows <= 16 else [], fontsize=7)
    ax.set_xticks([])


def memory_map(snap: PoolSnapshot, columns: int | None = None,
               title: str = "") -> Figure:
    """Every page as a cell, coloured by state and free-chunk order."""
    columns = columns or default_columns(snap.nr_pages)
    rows = -(-snap.nr_pages // columns)
    fig, ax = plt.subplots(layout="constrained",
                           figsize=(10, 0.8 + min(rows, 32) * 0.25))
    draw_pages(ax, snap, columns)
    ax.legend(handles=_legend_handles(snap), loc="upper left",
              bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    ax.set_title(title or f"{snap.nr_pages} pages, {snap.free_pages} free",
                 fontsize=10)
    return fig


def free_list_lengths(snap: PoolSnapshot, title: str = "") -> Figure:
    """A bar per order: how many free chunks its list holds."""
    orders = list(range(snap.max_order + 1))
    counts = [len(snap.free_chunks.get(k, [])) for k in orders]
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 2.6))
    ax.bar(orders, counts, color=[order_colour(k, snap.max_order)
                                  for k in orders], edgecolor="black")
    for k, n in zip(orders, counts):
        if n:
            ax.text(k, n, str(n), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(orders)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("order (a chunk of order k is 2^k pages)")
    ax.set_ylabel("free chunks")
    ax.set_ylim(0, max(counts + [1]) * 1.25)
    ax.set_title(title or "free lists", fontsize=10)
    return fig


def _solid(snap: PoolSnapshot, pfn: int, order: int) -> bool:
    """No page of the block is free, and no allocation made through the
    PageAllocator starts or ends inside it: reserved, the allocator's own
    pages, or pages taken by C code directly (xmalloc's arenas)."""
    end = pfn + (1 << order)
    if end > snap.nr_pages or (snap.state[pfn:end] == PageState.FREE).any():
        return False
    return not any(p < end and pfn < p + (1 << o)
                   for p, o in snap.allocations.items())


def _inside_leaf(snap: PoolSnapshot, pfn: int, order: int) -> bool:
    """Whether the block lies inside a larger free chunk or allocation."""
    if snap.order[pfn] > order:
        return True
    return any(p <= pfn < p + (1 << o) and o > order
               for p, o in snap.allocations.items())


def _node_colour(snap: PoolSnapshot, pfn: int, order: int):
    """How to draw the aligned block of 2^order pages at pfn in the tree:
    a colour for a leaf (free chunk, allocation, solid block), white for a
    split node, None when it lies inside a bigger leaf."""
    if pfn in snap.free_chunks.get(order, []):
        return order_colour(order, snap.max_order)
    if snap.allocations.get(pfn) == order:
        return USED_COLOUR
    if _inside_leaf(snap, pfn, order):
        return None
    if _solid(snap, pfn, order):
        parent = pfn & ~((2 << order) - 1)
        if order < snap.max_order and _solid(snap, parent, order + 1):
            return None
        fixed = {PageState.RESERVED: RESERVED_COLOUR,
                 PageState.META: META_COLOUR, PageState.USED: SLACK_COLOUR}
        return fixed[PageState(snap.state[pfn])]
    return SPLIT_COLOUR


def _tree_nodes(snap: PoolSnapshot) -> list[tuple[int, int, object]]:
    """(pfn, order, colour) of every node the buddy tree draws."""
    nodes = []
    for order in range(snap.max_order + 1):
        for pfn in range(0, snap.nr_pages - (1 << order) + 1, 1 << order):
            colour = _node_colour(snap, pfn, order)
            if colour is not None:
                nodes.append((pfn, order, colour))
    return nodes


def buddy_tree(snap: PoolSnapshot, title: str = "") -> Figure:
    """The buddy tree of a small pool, one row per order, largest on top.

    Leaves are the free chunks (coloured by order) and the allocations made
    through the PageAllocator (red); white boxes are chunks split in two.
    Pages in use that no PageAllocator.alloc() handed out (reserved, the
    allocator's own, pages taken by xmalloc) are drawn as the largest
    aligned blocks they fill, grey or pink. A legend names the colours.
    """
    if snap.nr_pages > 256:
        raise ValueError("buddy_tree draws pools of at most 256 pages")
    top = snap.max_order
    fig, ax = plt.subplots(layout="constrained",
                           figsize=(10, 0.45 * (top + 2) + 0.4))
    nodes = _tree_nodes(snap)
    for pfn, order, colour in nodes:
        ax.add_patch(Rectangle((pfn, top - order), 1 << order, 0.8,
                               facecolor=colour, edgecolor="black",
                               linewidth=0.6))
    ax.set_xlim(0, snap.nr_pages)
    ax.set_ylim(-0.2, top + 1)
    ax.set_yticks([top - k + 0.4 for k in range(top + 1)])
    ax.set_yticklabels([f"order {k}" for k in range(top + 1)], fontsize=7)
    ax.set_xlabel("pfn")
    ax.legend(handles=_tree_legend(snap, {c for _, _, c in nodes
                                          if isinstance(c, str)}),
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7,
              frameon=False)
    ax.set_title(title or "buddy tree", fontsize=10)
    return fig


def _tree_legend(snap: PoolSnapshot, drawn: set[str]) -> list[Patch]:
    """The buddy tree's colours: split nodes, then what the pages show."""
    handles = []
    if SPLIT_COLOUR in drawn:
        handles.append(Patch(facecolor=SPLIT_COLOUR, edgecolor="black",
                             label="split in two"))
    handles += _legend_handles(snap)
    if SLACK_COLOUR in drawn:
        handles.append(Patch(color=SLACK_COLOUR,
                             label="in use, not through alloc()"))
    return handles


def step_through(steps: Sequence[Step], columns: int | None = None) -> Figure:
    """A small multiple per step: the pool's pages after each operation."""
    nr_pages = steps[0].snapshot.nr_pages
    columns = columns or default_columns(nr_pages)
    rows = -(-nr_pages // columns)
    fig, axes = plt.subplots(len(steps), 1, squeeze=False, sharex=True,
                             layout="constrained",
                             figsize=(10, 0.6 + (0.4 + 0.22 * rows)
                                      * len(steps)))
    for ax, step in zip(axes[:, 0], steps):
        draw_pages(ax, step.snapshot, columns)
        ax.set_yticks(range(rows))
        ax.set_yticklabels([f"pfn {r * columns}" for r in range(rows)],
                           fontsize=7)
        ax.set_title(f"{step.label}  ({step.snapshot.free_pages} free)",
                     fontsize=8, loc="left")
    bottom = axes[-1, 0]
    ticks = list(range(0, columns, max(1, columns // 8)))
    bottom.set_xticks(ticks)
    bottom.set_xticklabels([f"+{t}" for t in ticks], fontsize=7)
    bottom.set_xlabel("pfn = row's first pfn + column", fontsize=8)
    fig.legend(handles=_legend_handles([s.snapshot for s in steps]),
               loc="outside right upper", fontsize=7, frameon=False)
    return fig


def _draw_block(ax, row: int, block: Block) -> None:
    start = block.offset
    header = block.payload - block.offset
    ax.barh(row, header, left=start, color=HEADER_COLOUR, height=0.7)
    if block.kind == BlockKind.FREE:
        ax.barh(row, block.size - header, left=start + header,
                color=HEAP_FREE_COLOUR, height=0.7)
        return
    ax.barh(row, block.requested, left=start + header, color=USED_COLOUR,
            height=0.7)
    slack = block.size - header - block.requested
    ax.barh(row, slack, left=start + header + block.requested,
            color=SLACK_COLOUR, height=0.7)


# sizeof(struct xbig) rounded up to XMALLOC_ALIGN: the payload offset of a
# big allocation with no special alignment.
BIG_HEADER = 48


def _draw_big(ax, row: int, big: Block) -> None:
    """A big allocation scaled to one page's width: header, alignment gap,
    requested bytes, and the unused end of the chunk."""
    scale = PAGE_SIZE / big.size
    spans = [(0, BIG_HEADER, HEADER_COLOUR),
             (BIG_HEADER, big.payload, SLACK_COLOUR),
             (big.payload, big.payload + big.requested, USED_COLOUR),
             (big.payload + big.requested, big.size, SLACK_COLOUR)]
    for start, end, colour in spans:
        if end > start:
            ax.barh(row, (end - start) * scale, left=start * scale,
                    color=colour, height=0.7)


def heap_extent(snap: HeapSnapshot) -> int:
    """How much of the byte axis heap_map shows: the whole page, or, when
    every arena's used blocks lie in its first quarter and there is no big
    allocation, the used bytes and a little of the free block after them
    (a multiple of 64, at least 256)."""
    arenas = snap.arenas()
    if snap.bigs() or not arenas:
        return PAGE_SIZE
    used_end = max((b.offset + b.size for blocks in arenas.values()
                    for b in blocks if b.kind != BlockKind.FREE), default=0)
    if used_end > PAGE_SIZE // 4:
        return PAGE_SIZE
    return max(256, -(-used_end * 5 // 4 // 64) * 64)


def heap_map(snap: HeapSnapshot, title: str = "") -> Figure:
    """Each arena page as a bar of 4096 bytes: headers, used bytes, bytes
    rounded up, free blocks. Big allocations are listed below the arenas,
    each scaled to the width of a page. A heap that uses only the start of
    its pages is drawn zoomed to that start (heap_extent), and says so."""
    arenas, bigs = snap.arenas(), snap.bigs()
    rows = len(arenas) + len(bigs)
    fig, ax = plt.subplots(layout="constrained",
                           figsize=(10, 1.0 + 0.4 * max(rows, 1)))
    labels = []
    for row, (pfn, blocks) in enumerate(arenas.items()):
        ax.barh(row, blocks[0].offset, left=0, color=META_COLOUR, height=0.7)
        for block in blocks:
            _draw_block(ax, row, block)
        labels.append(f"arena, pfn {pfn}")
    for row, big in enumerate(bigs, start=len(arenas)):
        _draw_big(ax, row, big)
        labels.append(f"big, pfn {big.pfn} ({big.size // PAGE_SIZE} pages)")
    ax.set_yticks(range(rows))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    extent = heap_extent(snap)
    ax.set_xlim(0, extent)
    if extent < PAGE_SIZE:
        ax.set_xlabel(f"byte offset in the page: the first {extent} bytes "
                      f"(the free block goes on to byte {PAGE_SIZE})")
    else:
        ax.set_xlabel("byte offset in the page (big allocations: scaled)")
    ax.legend(handles=[Patch(color=META_COLOUR, label="arena header"),
                       Patch(color=HEADER_COLOUR, label="block header"),
                       Patch(color=USED_COLOUR, label="requested bytes"),
                       Patch(color=SLACK_COLOUR, label="unused: rounding, "
                             "alignment"),
                       Patch(color=HEAP_FREE_COLOUR, label="free block")],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7,
              frameon=False)
    ax.set_title(title or "heap", fontsize=10)
    return fig


def fragmentation(points: Sequence[FragmentationPoint], unit: str = "pages",
                  title: str = "") -> Figure:
    """Over a workload: in use, free and largest free piece (top), and the
    fragmentation 1 - largest/free (bottom)."""
    steps = [p.step for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 4.5),
                                      layout="constrained",
                                      height_ratios=[2, 1])
    top.plot(steps, [p.in_use for p in points], color=USED_COLOUR,
             label="in use")
    top.plot(steps, [p.free for p in points], color="#4c72b0", label="free")
    top.plot(steps, [p.largest_free for p in points], color="#55a868",
             label="largest free piece")
    top.set_ylabel(unit)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
               frameon=False)
    bottom.plot(steps, [p.fragmentation for p in points], color="black")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("1 - largest/free", fontsize=8)
    bottom.set_xlabel("operations")
    top.set_title(title or "fragmentation", fontsize=10)
    return fig


def bench_curve(points: Sequence[BenchPoint], title: str = "") -> Figure:
    """ns per alloc+free pair against pool size, on a log2 axis: a straight
    line means cost proportional to log(pages)."""
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 3.2))
    sizes = [p.nr_pages for p in points]
    ax.plot(sizes, [p.ns_per_pair for p in points], "o-", color="#4c72b0")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, max(p.ns_per_pair for p in points) * 1.2)
    ax.set_xlabel("pages in the pool")
    ax.set_ylabel("ns per alloc+free pair")
    for p in points:
        ax.annotate(f"{p.splits_per_pair:.0f}", (p.nr_pages, p.ns_per_pair),
                    textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize=7)
    ax.set_title(title or "worst-case alloc+free (labels: splits per pair)",
                 fontsize=10)
    return fig
