"""The event-channel plots (minios_lab/viz/events.py) and their helpers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from minios_lab.events import EventChannels  # noqa: E402
from minios_lab.viz.events import (CLEAR, DELIVERABLE, HELD,  # noqa: E402
                                   MASKED, _disabled_spans, _waits,
                                   plot_bitmaps, plot_scan_order,
                                   plot_timeline, port_states)


@pytest.fixture
def scene():
    """Ports 1, 3, 64 bound and raised, 70 bound but masked and raised,
    1000 raised unbound; events enabled but not yet delivered."""
    ev = EventChannels()
    for port in [1, 3, 64, 70]:
        ev.bind(port)
    ev.enable()
    ev.mask(70)
    for port in [64, 3, 1, 70, 1000]:
        ev.raise_event(port)
    return ev, ev.snapshot()


def test_port_states(scene):
    _, snap = scene
    states = port_states(snap)
    assert states.shape == (64, 64)           # (bit, word)
    assert states[1, 0] == DELIVERABLE and states[0, 1] == DELIVERABLE
    assert states[6, 1] == HELD               # port 70
    assert states[1000 % 64, 1000 // 64] == HELD
    assert states[2, 0] == MASKED             # unbound port 2
    ev = EventChannels()
    ev.bind(9)
    assert port_states(ev.snapshot())[9, 0] == CLEAR


def test_plot_bitmaps(scene):
    _, snap = scene
    fig = plot_bitmaps(snap, words=range(4))
    top, grid = fig.axes
    assert "evtchn_upcall_pending 1" in top.get_title()
    assert [t.get_text() for t in grid.get_xticklabels()] == ["0", "1", "2",
                                                              "3"]
    selector_row = top.images[0].get_array()
    assert list(selector_row[0]) == [1, 1, 0, 0]  # words 0 and 1 only


def test_plot_bitmaps_all_words_labels_every_eighth(scene):
    _, snap = scene
    grid = plot_bitmaps(snap).axes[1]
    labels = [t.get_text() for t in grid.get_xticklabels()]
    assert labels == [str(w) for w in range(0, 64, 8)]


def test_plot_scan_order_numbers_the_deliveries(scene):
    ev, before = scene
    got = ev.deliver()
    fig = plot_scan_order(before, got)
    grid = fig.axes[1]
    assert [t.get_text() for t in grid.texts] == ["1", "2", "3"]
    positions = [t.get_position() for t in grid.texts]
    assert positions == [(0, 1), (0, 3), (1, 0)]   # (word column, bit)
    assert fig.axes[0].get_title().endswith("ports 1, 3, 64")


def _timeline_scene() -> EventChannels:
    ev = EventChannels()
    ev.bind(1)
    ev.bind(2)
    ev.enable()
    ev.mask(2)
    ev.raise_event(2)
    ev.disable()
    ev.raise_event(1)
    ev.raise_event(1)
    ev.unmask(2)
    ev.enable()
    return ev


def test_disabled_spans_and_waits():
    ev = _timeline_scene()
    snap = ev.snapshot()
    # events start disabled (before step 1) and are disabled at step 6
    assert _disabled_spans(snap.trace) == [(0, 3), (6, 10)]
    assert _waits(snap.trace, snap.deliveries, 1) == [(7, 10)]
    assert _waits(snap.trace, snap.deliveries, 2) == [(5, 10)]


def test_plot_timeline_lanes_and_labels():
    ev = _timeline_scene()
    snap = ev.snapshot()
    fig = plot_timeline(snap.trace, snap.deliveries, [1, 2])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["port 1",
                                                            "port 2"]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["bind 1", "bind 2", "enable"]
    assert labels[-1] == "enable" and len(labels) == len(snap.trace)
