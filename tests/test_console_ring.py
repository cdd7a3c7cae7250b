"""The console ring (kernel/console_ring.c) with Python as xenconsoled."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from hypothesis import given, settings, strategies as st

from minios_lab.console_ring import (CONSOLE_PFN, INDEX_MOD, MAX_IDLE_YIELDS,
                                     NR_PAGES, ConsoleRing, ConsoleStalled,
                                     RingCorrupt, machine_frame)
from minios_lab.errors import KernelPanic

RING = 2048


def fresh(**kw) -> ConsoleRing:
    """A domU console with the start-of-day line already read."""
    ring = ConsoleRing(**kw)
    ring.run_consoled()
    ring.daemon.output.clear()
    return ring


def test_start_of_day_picks_the_ring_for_a_domu():
    ring = ConsoleRing()
    assert ring.backend == "ring" and not ring.uses_hypercall
    ring.run_consoled()
    mfn = machine_frame(CONSOLE_PFN)
    assert ring.output == (f"console: domU: ring at pfn {CONSOLE_PFN:#x} "
                           f"(mfn {mfn:#x}), event channel 2\r\n").encode()
    assert ring.xen.console_text == ""     # nothing went to console_io


def test_dom0_keeps_console_io_and_prints_nothing_at_start_of_day():
    ring = ConsoleRing(dom0=True)
    assert ring.backend == "console_io" and ring.uses_hypercall
    assert ring.xen.console_text == ""
    ring.print("as dom0\n")
    assert ring.xen.console_text == "as dom0\n"
    snap = ring.snapshot()
    assert snap.prod == snap.cons == 0 and snap.pending() == b""
    assert not [c for c in ring.xen.calls if c.name == "event_channel_op"]


def test_a_console_frame_that_is_not_ours_falls_back_to_console_io():
    ring = ConsoleRing(mfn=0x99)
    assert ring.backend == "console_io"
    assert "console mfn 0x99 is not ours" in ring.xen.console_text


@pytest.mark.parametrize("mfn, entries, nr_pages, p2m_ok", [
    (machine_frame(3), None, NR_PAGES, True),        # ours
    (10 ** 6, None, NR_PAGES, True),                 # beyond the m2p
    (machine_frame(6), None, 5, True),               # pfn 6 >= nr_pages
    (machine_frame(3), None, NR_PAGES, False),       # p2m disagrees
])
def test_console_ring_pfn_checks_the_frame_both_ways(mfn, entries, nr_pages,
                                                     p2m_ok):
    ring = ConsoleRing()
    d, lib = ring.daemon, ring.lib
    p2m = d.p2m if p2m_ok else ring.ffi.new("unsigned long[]", NR_PAGES)
    got = ring.kernel.console_ring_pfn(d.m2p, len(d.m2p), p2m, nr_pages, mfn)
    if mfn == machine_frame(3) and p2m_ok:
        assert got == 3
    else:
        assert got == lib.CONSOLE_RING_NO_PFN


def test_bytes_arrive_in_order_and_the_indexes_count_them():
    ring = fresh()
    start = ring.snapshot().prod
    ring.write(b"hello, ")
    ring.write("world")
    snap = ring.snapshot()
    assert snap.pending() == b"hello, world"
    assert (snap.prod - start) % INDEX_MOD == 12 and snap.cons == start
    assert ring.run_consoled() == 12
    assert ring.output == b"hello, world"
    assert ring.snapshot().waiting == 0


def test_printk_path_ends_lines_with_cr_lf():
    ring = fresh()
    ring.print("one\ntwo\n\nthree")
    ring.run_consoled()
    assert ring.output == b"one\r\ntwo\r\n\r\nthree"


def test_indexes_wrap_at_2_to_the_32_as_unsigned():
    banner = ConsoleRing().snapshot().waiting    # the start-of-day line
    ring = fresh(start_index=INDEX_MOD - 10 - banner)
    start = ring.snapshot().prod
    assert start == INDEX_MOD - 10
    data = bytes(range(40))
    ring.write(data)
    snap = ring.snapshot()
    assert snap.prod == (start + 40) % INDEX_MOD
    assert snap.prod < snap.cons          # wrapped: prod is numerically small
    assert snap.waiting == 40
    assert snap.out[start % RING] == 0 and \
        snap.out[snap.slot(start)] == data[0]
    assert snap.pending() == data
    ring.run_consoled()
    assert ring.output == data


def test_order_is_kept_across_the_end_of_out():
    ring = fresh()
    filler = RING - ring.snapshot().slot(ring.snapshot().prod) - 14
    ring.write(b"x" * filler)
    ring.run_consoled()
    ring.write(b"0123456789" * 10)        # slot 2034 on, then 0 to 85
    snap = ring.snapshot()
    assert snap.slot(snap.cons) == RING - 14 and snap.slot(snap.prod) == 86
    assert snap.out[RING - 14:] + snap.out[:86] == b"0123456789" * 10
    ring.run_consoled()
    assert ring.output[filler:] == b"0123456789" * 10


def test_a_full_ring_waits_until_the_consumer_moves():
    ring = fresh()
    ring.daemon.stall(3)
    data = bytes(i % 251 for i in range(RING + 500))
    ring.write(data)
    stats = ring.stats()
    # 3 yields while stalled, then one that lets xenconsoled read.
    assert stats["yields"] == 4
    stalled = [e for e in ring.history if e.op == "stalled"]
    assert len(stalled) == 3
    assert all((e.prod - e.cons) % INDEX_MOD == RING for e in stalled)
    ring.run_consoled()
    assert ring.output == data


def test_writer_never_overwrites_unread_bytes():
    ring = fresh()
    ring.write(b"a" * RING)                 # exactly full, no wait
    assert ring.stats()["yields"] == 0
    assert ring.snapshot().free == 0
    ring.daemon.stall(2)
    ring.write(b"b")
    assert ring.output[:RING] == b"a" * RING
    ring.run_consoled()
    assert ring.output == b"a" * RING + b"b"


def test_a_consumer_stalled_for_ever_is_reported_not_a_hang():
    ring = fresh()
    ring.daemon.stall(10 ** 9)
    with pytest.raises(ConsoleStalled, match="wait forever"):
        ring.write(b"y" * (RING + 1))
    snap = ring.snapshot()
    assert snap.waiting == RING and ring.output == b""
    assert snap.stats["yields"] == MAX_IDLE_YIELDS - 1
    ring.daemon.stall(0)                    # the instance goes on
    ring.consume()
    ring.write(b"z")
    ring.run_consoled()
    assert ring.output == b"y" * RING + b"z"


def test_a_lost_notification_delays_text_but_loses_none():
    ring = fresh()
    ring.daemon.drop_notifications(1)
    ring.write(b"first ")
    assert ring.run_consoled() == 0         # never kicked: nothing read
    assert ring.snapshot().pending() == b"first "
    ring.write(b"second")
    ring.run_consoled()
    assert ring.output == b"first second"
    assert ring.daemon.dropped == 1


def test_a_lost_notification_on_a_full_ring_is_resent_before_each_yield():
    ring = fresh()
    ring.daemon.drop_notifications(1)
    data = b"q" * (RING + 100)
    ring.write(data)                      # the first kick is lost
    assert ring.daemon.dropped == 1 and ring.stats()["yields"] == 1
    ring.run_consoled()
    assert ring.output == data


def test_a_consumer_index_ahead_of_the_producer_panics_through_console_io():
    ring = fresh()
    ring.daemon.ring.out_cons = (ring.daemon.ring.out_prod + 5) % INDEX_MOD
    with pytest.raises(KernelPanic, match=r"BUG_ON\(used > RING_SIZE\)"):
        ring.write(b"a")
    assert ring.uses_hypercall
    assert "PANIC at kernel/console_ring.c" in ring.xen.console_text
    with pytest.raises(RingCorrupt):
        ring.consume()


def test_bad_arguments_are_refused_in_python():
    ring = fresh()
    with pytest.raises(ValueError):
        ring.daemon.stall(-1)
    with pytest.raises(ValueError):
        ring.daemon.drop_notifications(-2)
    with pytest.raises(ValueError):
        ring.write(b"x" * ((1 << 20) + 1))
    dom0 = ConsoleRing(dom0=True)
    with pytest.raises(RuntimeError, match="no console ring"):
        dom0.write(b"x")


@settings(max_examples=30, deadline=None)
@given(n=st.one_of(st.integers(), st.sampled_from(
    [-1, 1 << 31, 1 << 32, 1 << 63, (1 << 64) - 1, 1 << 64, 1 << 80])))
def test_absurd_numbers_are_refused_or_harmless(n):
    clear = (ValueError, RuntimeError, ConsoleStalled)
    for action in (lambda: ConsoleRing(start_index=n),
                   lambda: ConsoleRing(mfn=n),
                   lambda: fresh().consume(n),
                   lambda: fresh().daemon.stall(n),
                   lambda: fresh().daemon.drop_notifications(n)):
        try:
            action()
        except clear:
            pass


def test_two_rings_take_the_console_in_turn_with_their_own_counts():
    a = fresh()
    a.write(b"from a ")
    b = fresh()
    b.write(b"from b")
    a.write(b"again")
    a.run_consoled()
    b.run_consoled()
    assert a.output == b"from a again" and b.output == b"from b"
    assert b.stats()["writes"] == 2 + 1        # start of day: line + CR LF
    assert a.stats()["writes"] == 2 + 2
    dom0 = ConsoleRing(dom0=True)
    assert dom0.stats()["writes"] == 0 and not a.uses_hypercall
    a.write(b"!")
    assert a.stats()["writes"] == 5


def test_notifications_are_counted_on_both_sides():
    ring = fresh()
    before = ring.stats()["notifies"]
    ring.write(b"abc")
    ring.write(b"def")
    assert ring.stats()["notifies"] - before == 2
    calls = [c for c in ring.xen.calls if c.name == "event_channel_op"]
    assert calls and all(c.result == 0 for c in calls)


ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.binary(min_size=0, max_size=3000)),
    st.tuples(st.just("consume"), st.integers(0, 3000)),
    st.tuples(st.just("run"), st.just(0)),
    st.tuples(st.just("stall"), st.integers(0, 5)),
    st.tuples(st.just("drop"), st.integers(0, 2)),
), max_size=25)


@settings(max_examples=60, deadline=None)
@given(ops=ops, start=st.one_of(st.integers(0, INDEX_MOD - 1),
                                st.integers(INDEX_MOD - 4096, INDEX_MOD - 1)))
def test_any_writes_and_consumer_steps_deliver_exactly_the_bytes(ops, start):
    ring = fresh(start_index=start)
    written = bytearray()
    for op, arg in ops:
        if op == "write":
            ring.write(arg)
            written += arg
        elif op == "consume":
            ring.consume(arg)
        elif op == "run":
            ring.run_consoled()
        elif op == "stall":
            ring.daemon.stall(arg)
        else:
            ring.daemon.drop_notifications(arg)
        snap = ring.snapshot()
        assert 0 <= snap.waiting <= RING
        assert ring.output + snap.pending() == bytes(written)
    ring.consume()
    assert ring.output == bytes(written)


def test_viz_marks_the_waiting_slots_and_unwraps_the_counters():
    from minios_lab.viz.console_ring import (READ, WAITING, plot_indexes,
                                             plot_ring, slot_states,
                                             unwrapped)
    ring = fresh(start_index=INDEX_MOD - 30)
    ring.write(b"w" * 50)
    snap = ring.snapshot()
    states = slot_states(snap)
    waiting = [i for i, s in enumerate(states) if s == WAITING]
    assert len(waiting) == 50
    assert set(waiting) == {snap.slot(snap.cons + i) for i in range(50)}
    assert (states == READ).sum() == 62     # the start-of-day line, read
    values = unwrapped([INDEX_MOD - 5, INDEX_MOD - 1, 3], INDEX_MOD - 5)
    assert list(values) == [0, 4, 8]
    fig = plot_ring(snap)
    assert "50 of 2048 bytes waiting" in fig.axes[0].get_title()
    fig2 = plot_indexes(snap)
    labels = fig2.axes[0].get_legend_handles_labels()[1]
    assert "out_prod" in labels and "out_cons" in labels
