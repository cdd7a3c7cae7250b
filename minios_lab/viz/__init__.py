"""Plots: pure functions from snapshots (plain data) to matplotlib Figures.

One module per subsystem (mm, pagetable, traps, events, time); shared
pictures live in viz.common and are re-exported here.
"""
from minios_lab.viz.common import Region, plot_regions

__all__ = ["Region", "plot_regions"]
