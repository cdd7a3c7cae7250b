"""Plots of the clock and the timer: data in, Figure out.

Every function is pure: it draws the plain data that :mod:`minios_lab.time`
returns (a ClockTrace, ScaleSteps, a list of intervals), so the same data
always gives the same picture.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minios_lab.time import ClockTrace, ScaleSteps, time_scale

STAMP_COLOUR = "#c44e52"
LINE_COLOUR = "#4c72b0"
HI_COLOUR = "#55a868"
LO_COLOUR = "#dd8452"
RESULT_COLOUR = "#8172b2"
PERIOD_COLOUR = "#c44e52"


def record_ppm(trace: ClockTrace) -> list[float]:
    """Each record's rate against the first record's, in parts per million:
    (mul / first mul - 1) * 10^6. 200 ppm: 200 ns more per ms of TSC."""
    first = trace.muls[0]
    return [(mul / first - 1) * 1e6 for mul in trace.muls]


def plot_clock_trace(trace: ClockTrace) -> Figure:
    """Not system time itself (a straight line to the eye) but how it
    differs from one rate: each record's rate in ppm against the first
    record's (top, a step per re-stamp), and the nanoseconds by which
    monotonic_clock() has run ahead of the first rate (bottom): the sum of
    those differences, bending at each stamp and never jumping."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True,
                                      layout="constrained")
    tsc = np.array(trace.tsc, dtype=float)
    ns = np.array(trace.kernel_ns, dtype=float)
    stamps = np.array(trace.stamps, dtype=float)
    ppm = record_ppm(trace)
    edges = np.append(stamps[:, 0], tsc[-1]) / 1e6
    top.stairs(ppm, edges, color=STAMP_COLOUR, lw=2, baseline=None)
    top.axhline(0, color="black", lw=0.6)
    top.set_ylabel("rate of the record\n(ppm off the first)")
    rate = trace.muls[0] * 2.0**trace.shift / 2**32   # ns per tick
    ideal = stamps[0, 1] + (tsc - stamps[0, 0]) * rate
    bottom.plot(tsc / 1e6, ns - ideal, color=LINE_COLOUR,
                label="monotonic_clock() minus the first rate")
    for x in stamps[1:, 0]:
        for ax in (top, bottom):
            ax.axvline(x / 1e6, color="grey", lw=0.8, ls=":")
    bottom.axhline(0, color="black", lw=0.6)
    bottom.set_xlabel("TSC (millions of ticks); dotted: Xen writes a record")
    bottom.set_ylabel("ns ahead of\nthe first rate")
    bottom.legend(loc="lower right", fontsize=8)
    fig.suptitle("Xen's system time: a line per record, joined at the stamps")
    return fig


def _bar(ax, row: int, low_bit: int, bits: int, colour: str,
         text: str) -> None:
    """A box covering bit positions low_bit .. low_bit + bits - 1."""
    ax.add_patch(Rectangle((low_bit, row - 0.35), bits, 0.7, color=colour,
                           alpha=0.75))
    ax.text(low_bit + bits / 2, row, text, ha="center", va="center",
            fontsize=8, family="monospace")


def plot_scale_steps(s: ScaleSteps) -> Figure:
    """The 64x32-bit multiply of scale_delta() on a bit-position axis:
    the two 32-bit halves of the shifted delta, their products with mul,
    and the sum that is the result (bits 32..95 of the 96-bit product)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    shift_text = (f"<< {s.shift}" if s.shift >= 0 else f">> {-s.shift}")
    rows = [
        (5, 32, 32, HI_COLOUR, f"hi = {s.hi:#x}"),
        (5, 0, 32, LO_COLOUR, f"lo = {s.lo:#x}"),
        (4, 0, 32, "#bbbbbb", f"mul = {s.mul:#x}"),
        (3, 32, 64, HI_COLOUR, f"hi * mul = {s.hi_mul:#x}"),
        (2, 0, 64, LO_COLOUR, f"lo * mul = {s.lo_mul:#x}"),
        (1, 32, 64, RESULT_COLOUR, f"result = {s.result} ns"),
    ]
    for row, low, bits, colour, text in rows:
        _bar(ax, row, low, bits, colour, text)
    ax.axvline(32, color="black", lw=0.8, ls="--")
    ax.text(31, 0.4, "bits below 32 are dropped", ha="right", fontsize=8)
    ax.set_xlim(100, -4)   # bit 0 on the right, as numbers are written
    ax.set_ylim(0.2, 5.6)
    ax.set_yticks([5, 4, 3, 2, 1], [f"delta {shift_text}", "times",
                                    "= partial", "+ partial", ">> 32"])
    ax.set_xlabel("bit position in the 96-bit product")
    ax.set_title(f"scale_delta({s.delta}, {s.mul:#x}, {s.shift})")
    fig.tight_layout()
    return fig


def plot_mul_shift(freqs_hz: Sequence[int]) -> Figure:
    """The (mul, shift) Xen picks for each TSC frequency: the shift steps
    by one at each power of two, keeping mul in [2^31, 2^32)."""
    freqs = np.array(freqs_hz, dtype=float)
    scales = [time_scale(int(f)) for f in freqs_hz]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    top.plot(freqs / 1e9, [m / 2**32 for m, _ in scales], color=LINE_COLOUR)
    top.set_ylabel("mul / 2^32")
    top.set_ylim(0.45, 1.05)
    bottom.step(freqs / 1e9, [s for _, s in scales], where="post",
                color=STAMP_COLOUR)
    bottom.set_ylabel("tsc_shift")
    bottom.set_xscale("log")
    bottom.set_xlabel("TSC frequency (GHz)")
    fig.suptitle("ns per tick = (mul / 2^32) * 2^shift")
    fig.tight_layout()
    return fig


def plot_tick_intervals(intervals_us: Sequence[int], period_us: int,
                        title: Optional[str] = None,
                        bin_us: Optional[int] = None) -> Figure:
    """Histogram of the intervals between ticks against the requested
    period (left), and each interval in tick order (right)."""
    iv = np.array(intervals_us, dtype=float)
    fig, (hist, line) = plt.subplots(1, 2, figsize=(10, 3.8),
                                     gridspec_kw={"width_ratios": [3, 2]})
    width = bin_us or max(1, period_us // 20)
    edges = np.arange(0, max(iv.max(initial=0), 2 * period_us) + width,
                      width)
    hist.hist(iv, bins=edges, color=LINE_COLOUR)
    hist.axvline(period_us, color=PERIOD_COLOUR, ls="--",
                 label=f"period {period_us} us")
    hist.axvline(iv.mean() if len(iv) else 0, color="black", ls=":",
                 label=f"mean {iv.mean() if len(iv) else 0:.1f} us")
    hist.set_yscale("log")
    hist.set_xlabel("interval between ticks (us)")
    hist.set_ylabel("ticks")
    hist.legend(loc="upper right")   # "best" warns if slow: output varies
    line.plot(np.arange(len(iv)), iv, lw=0.7, color=LINE_COLOUR)
    line.axhline(period_us, color=PERIOD_COLOUR, ls="--")
    line.set_xlabel("tick")
    line.set_ylabel("interval (us)")
    fig.suptitle(title or f"{len(iv)} ticks at {period_us} us")
    fig.tight_layout()
    return fig
