"""The time plots: each draws what it is given, the same way every time."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from minios_lab.time import Clock, scale_steps, trace_clock  # noqa: E402
from minios_lab.viz.time import (plot_clock_trace, plot_mul_shift,  # noqa
                                 plot_scale_steps, plot_tick_intervals)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def test_clock_trace_plots_samples_and_stamps():
    trace = trace_clock(Clock(), 3000, 40, 10, drift_ppm=[0, 500])
    fig = plot_clock_trace(trace)
    top, bottom = fig.axes
    # top: one step per record, from each stamp to the next (or the end)
    steps = top.patches[0].get_data()
    assert len(steps.values) == len(trace.stamps)
    assert steps.edges[0] == pytest.approx(trace.stamps[0][0] / 1e6)
    assert steps.edges[-1] == pytest.approx(trace.tsc[-1] / 1e6)
    # bottom: every sample, the first record's rate as the reference: no
    # error before the stamp
    x, err = bottom.lines[0].get_data()
    assert len(x) == 40
    assert np.allclose(err[:10], 0, atol=1) and abs(err[-1]) > 10


def test_scale_steps_plot_labels_the_values():
    s = scale_steps(2**40 + 12345, 0xF3CF4EC1, -1)
    texts = [t.get_text() for t in plot_scale_steps(s).axes[0].texts]
    assert f"result = {s.result} ns" in texts
    assert f"hi = {s.hi:#x}" in texts and f"lo = {s.lo:#x}" in texts


def test_mul_shift_plot_steps_at_powers_of_two():
    fig = plot_mul_shift([600_000_000, 1_200_000_000, 2_400_000_000])
    shifts = fig.axes[1].lines[0].get_ydata()
    assert list(shifts) == [1, 0, -1]


def test_tick_histogram_counts_every_interval():
    intervals = [1000] * 50 + [20] * 5 + [4000]
    fig = plot_tick_intervals(intervals, 1000)
    hist, line = fig.axes
    assert sum(p.get_height() for p in hist.patches) == len(intervals)
    assert len(line.lines[0].get_ydata()) == len(intervals)
    assert f"mean {np.mean(intervals):.1f} us" in [t.get_text()
                                for t in hist.get_legend().get_texts()]


def test_plots_are_deterministic():
    intervals = list(range(900, 1100, 3))
    assert _png(plot_tick_intervals(intervals, 1000)) == \
        _png(plot_tick_intervals(intervals, 1000))


def test_tick_intervals_plot_warns_nothing_even_with_many_ticks():
    """A stored notebook output must not depend on how long matplotlib
    took: loc="best" warns when placing a legend is slow."""
    import warnings
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_tick_intervals(rng.integers(1, 20000, 200_000).tolist(),
                                  1000)
        _png(fig)
