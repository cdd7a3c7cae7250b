"""The course's plots say what their text says: labels that can be read
(no two overlap), legends for every colour, integer counts, a zoom where
the data would be slivers, differences where the values are a line."""
from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pytest
from hypothesis import given, strategies as st
from matplotlib.patches import FancyArrowPatch

matplotlib.use("Agg")

from minios_lab.mm import Heap, PageAllocator, step_through  # noqa: E402
from minios_lab.pagetable import PageTables  # noqa: E402
from minios_lab.time import Clock, trace_clock  # noqa: E402
from minios_lab.viz import Region, plot_regions  # noqa: E402
from minios_lab.viz import mm as viz_mm  # noqa: E402
from minios_lab.viz import pagetable as vp  # noqa: E402
from minios_lab.viz.common import spaced_ticks  # noqa: E402
from minios_lab.viz.time import plot_clock_trace, record_ppm  # noqa: E402


def _extents(fig, texts):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts
            if t.get_visible() and t.get_text()]


def _overlapping(boxes) -> list:
    return [(a, b) for a, b in itertools.combinations(boxes, 2)
            if a.overlaps(b)]


# --- plot_regions (chapter 01: the guest's first virtual addresses) -------

BOOT = [Region("kernel image", 0, 0x42000),
        Region("p2m list (mfn_list)", 0x42000, 0x62000),
        Region("start_info", 0x62000, 0x63000),
        Region("page tables", 0x63000, 0x68000)]


def test_region_ticks_do_not_overlap_and_legend_names_every_region():
    fig = plot_regions(BOOT, "boot")
    ax = fig.axes[0]
    assert _overlapping(_extents(fig, ax.get_xticklabels())) == []
    legend = " | ".join(t.get_text() for t in fig.legends[0].get_texts())
    for region in BOOT:
        assert region.name in legend and f"{region.start:#x}" in legend
    assert len(ax.patches) == len(BOOT)
    # the two narrow regions share a tick with their neighbour: dropped
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        ["0x0", "0x42000", "0x68000"]


def test_region_legend_does_not_cover_the_addresses():
    fig = plot_regions(BOOT)
    ticks = _extents(fig, fig.axes[0].get_xticklabels())
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert ticks and not any(box.overlaps(legend) for box in ticks)


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30),
       st.floats(0.01, 0.3))
def test_spaced_ticks_keep_ends_and_gaps(positions, min_gap):
    span = max(positions) or 1
    kept = spaced_ticks(positions, span, min_gap)
    ordered = sorted(set(positions))
    assert kept[0] == ordered[0] and kept[-1] == ordered[-1]
    assert kept == sorted(kept) and set(kept) <= set(ordered)
    if len(kept) > 2:
        assert min(np.diff(kept)) >= min_gap * span


# --- chapter 03: the page allocator ---------------------------------------

def _three_steps():
    return step_through(PageAllocator(32), [
        ("alloc", "A", 0), ("alloc", "B", 1), ("free", "A")])


def test_step_through_has_a_legend_and_a_pfn_axis():
    steps = _three_steps()
    fig = viz_mm.step_through(steps)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "allocated" in labels and "allocator's own" in labels
    assert any(label.startswith("free, order 0") for label in labels)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == \
            ["pfn 0", "pfn 16"]
    assert "pfn" in fig.axes[-1].get_xlabel()
    assert f"({steps[1].snapshot.free_pages} free)" in fig.axes[1].get_title(
        loc="left")


def test_buddy_tree_legend_names_split_used_and_free():
    pa = PageAllocator(64)
    for order in (0, 2, 0, 3, 1):
        pa.alloc(order)
    fig = viz_mm.buddy_tree(pa.snapshot())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "split in two" and "allocated" in labels
    free = sorted(k for k, pfns in pa.snapshot().free_chunks.items() if pfns)
    assert [lb for lb in labels if lb.startswith("free, order")] == \
        [f"free, order {k} ({1 << k} page{'s' * (k > 0)})" for k in free]
    assert fig.axes[0].get_xlabel() == "pfn"


def test_free_list_counts_have_integer_ticks():
    pa = PageAllocator(64)
    pa.alloc(0)
    fig = viz_mm.free_list_lengths(pa.snapshot())
    fig.canvas.draw()
    ticks = fig.axes[0].get_yticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


# --- chapter 04: xmalloc --------------------------------------------------

def test_a_heap_using_the_start_of_its_page_is_zoomed():
    heap = Heap(8)
    for size in (24, 100, 7):
        heap.malloc(size)
    snap = heap.snapshot()
    used = max(b.offset + b.size for blocks in snap.arenas().values()
               for b in blocks if b.kind != viz_mm.BlockKind.FREE)
    extent = viz_mm.heap_extent(snap)
    assert used <= extent < 4096 and extent % 64 == 0
    fig = viz_mm.heap_map(snap)
    assert fig.axes[0].get_xlim() == (0, extent)
    assert "4096" in fig.axes[0].get_xlabel()


def test_a_heap_using_its_whole_page_is_not_zoomed():
    heap = Heap(8)
    heap.malloc(2000)
    assert viz_mm.heap_extent(heap.snapshot()) == 4096
    assert viz_mm.heap_map(heap.snapshot()).axes[0].get_xlim() == (0, 4096)


# --- chapter 05: page tables ----------------------------------------------

@pytest.fixture(scope="module")
def mapped():
    pt = PageTables(4096, seed=1)
    pt.map_all()
    return pt


def test_v2m_zoom_shows_runs_as_segments(mapped):
    runs = vp.in_range(mapped.snapshot().mappings, 0, 4096 << 12)
    fig = vp.v2m(runs, zoom_pages=128)
    overview, zoom = fig.axes[:2]
    assert len(overview.lines) == len(runs)
    assert zoom.get_xlim() == (-1, 129)
    shown = [line for line in zoom.lines
             if line.get_xdata()[0] < 128]
    assert shown and all(np.ptp(line.get_xdata()) >= 0.5 for line in shown)
    colours = {line.get_color() for line in zoom.lines}
    assert vp.RO_COLOUR in colours and vp.RW_COLOUR in colours
    assert len(vp.v2m(runs).axes) == 1


def test_walk_labels_do_not_overlap_each_other_or_the_arrows(mapped):
    mapped.map(1 << 39, 3000, 4)
    for va in ((1 << 39) + 0x2345, 1 << 39):
        fig = vp.walk_figure(mapped.walk(va))
        ax = fig.axes[0]
        boxes = _extents(fig, ax.texts)
        assert _overlapping(boxes) == []
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        assert len(arrows) == 4
        for arrow in arrows:   # an arrowhead is ~12 px: keep it clear
            x, y = ax.transData.transform(arrow._posA_posB[1])
            for box in boxes:
                dx = max(box.x0 - x, 0, x - box.x1)
                dy = max(box.y0 - y, 0, y - box.y1)
                assert np.hypot(dx, dy) > 15, (arrow, box)


# --- chapter 08: the clock ------------------------------------------------

def test_clock_trace_shows_ppm_steps_and_the_difference():
    trace = trace_clock(Clock(), 3000, 40, 10, drift_ppm=[0, 500, -800])
    ppm = record_ppm(trace)
    # the changes add up: +500, then -800 from there
    assert ppm[0] == 0 and ppm[1] == pytest.approx(500, abs=1)
    assert ppm[2] == pytest.approx(-300, abs=1)
    fig = plot_clock_trace(trace)
    top, bottom = fig.axes[:2]
    assert np.allclose(top.patches[0].get_data().values, ppm)
    assert "ppm" in top.get_ylabel()
    # below: ns ahead of the first rate, the ppm of each record times the
    # time it ruled (no jump at a stamp: the error only bends)
    err = bottom.lines[0].get_ydata()
    stamps = [t for t, _ in trace.stamps] + [trace.tsc[-1]]
    rate = trace.muls[0] * 2.0**trace.shift / 2**32
    ahead = sum(p * 1e-6 * (b - a) * rate
                for p, a, b in zip(ppm, stamps, stamps[1:]))
    assert np.allclose(err[:10], 0, atol=1)
    assert err[-1] == pytest.approx(ahead, abs=len(ppm) + 1)
    assert max(abs(np.diff(err))) < max(abs(np.array(ppm))) * 1e-6 * \
        3000 * rate * 1.5 + 2
