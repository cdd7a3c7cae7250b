"""Event channels, host build: kernel/hypervisor.c and kernel/events.c with
Python playing Xen (minios_lab/events.py).

The documented scan order is: selector words lowest first, in each word
the pending-and-unmasked ports lowest bit first, so one upcall delivers in
ascending port order. The state machine at the end checks random
sequences of raise/mask/unmask/disable/enable/save/restore/deliver against
a small model: every raised event on a bound, unmasked port is delivered
exactly once, in that order, never while masked or disabled.
"""
from __future__ import annotations

import errno

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant,
                                 precondition, rule)

from minios_lab.errors import KernelPanic
from minios_lab.events import (DOMID_SELF, NR_PORTS, XEN_VERSION,
                               EventChannels, EventError, EventStorm,
                               bits_to_ports, port_bit)

from conftest import edit


@pytest.fixture
def ev() -> EventChannels:
    return EventChannels()


def bind_all(ev: EventChannels, ports) -> None:
    for port in ports:
        ev.bind(port)


def by_upcall(deliveries) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for d in deliveries:
        groups.setdefault(d.upcall, []).append(d.port)
    return [groups[k] for k in sorted(groups)]


# --- helpers ---------------------------------------------------------------

def test_port_bit_and_bits_to_ports():
    assert port_bit(0) == (0, 1)
    assert port_bit(65) == (1, 2)
    assert port_bit(NR_PORTS - 1) == (63, 1 << 63)
    with pytest.raises(ValueError):
        port_bit(NR_PORTS)
    with pytest.raises(ValueError):
        port_bit(-1)
    words = [0] * 64
    words[0], words[2], words[63] = 0b101, 1 << 63, 1
    assert bits_to_ports(words) == [0, 2, 191, 4032]


def test_snapshot_grid_matches_ports(ev):
    bind_all(ev, [3, 70])
    ev.raise_event(3)
    ev.raise_event(70)
    ev.raise_event(4000)
    snap = ev.snapshot()
    grid = snap.grid("pending")
    assert grid.shape == (64, 64)
    assert list(zip(*np.nonzero(grid))) == [(0, 3), (1, 6), (62, 32)]
    assert snap.pending_ports() == [3, 70, 4000]
    assert snap.deliverable_ports() == [3, 70]
    assert 4000 in snap.masked_ports() and 3 not in snap.masked_ports()


# --- start state, binding ------------------------------------------------------

def test_start_state_is_xens(ev):
    snap = ev.snapshot()
    assert snap.upcall_mask == 1, "Xen starts a PV guest with events masked"
    assert snap.masked_ports() == list(range(NR_PORTS)), "init masks all"
    assert snap.bound == [] and snap.pending_ports() == []


def test_bind_unmasks_and_rejects_a_second_bind(ev):
    ev.bind(5)
    assert 5 not in ev.snapshot().masked_ports()
    with pytest.raises(EventError) as info:
        ev.bind(5)
    assert info.value.errno == errno.EBUSY
    with pytest.raises(ValueError):
        ev.bind(NR_PORTS)
    assert ev.kernel.bind_evtchn(NR_PORTS, ev.lib.host_evtchn_handler,
                                 ev.ffi.NULL) == -errno.EINVAL


def test_event_raised_before_bind_is_delivered_at_bind(ev):
    ev.enable()
    ev.raise_event(9)
    assert ev.deliver() == []       # masked: no handler yet
    ev.bind(9)
    assert [(d.port, d.during) for d in ev.log] == [(9, "bind")]


# --- Xen's half: the 2-level bits -----------------------------------------------

def test_xen_sets_selector_and_upcall_only_for_unmasked(ev):
    ev.bind(66)
    assert ev.raise_event(66) is True
    snap = ev.snapshot()
    assert snap.selector == 1 << 1 and snap.upcall_pending == 1
    assert ev.raise_event(66) is False, "a pending bit coalesces"
    ev.raise_event(67)              # unbound: masked
    snap = ev.snapshot()
    assert snap.pending_ports() == [66, 67] and snap.selector == 1 << 1


def test_disabled_holds_everything_and_enable_delivers(ev):
    bind_all(ev, [1, 2])
    ev.raise_event(2)
    ev.raise_event(1)
    assert ev.deliver() == [], "events start disabled"
    ev.enable()
    assert [(d.port, d.during) for d in ev.log] == [(1, "enable"),
                                                   (2, "enable")]
    assert all(d.masked for d in ev.log), "Xen masks events in the upcall"
    assert ev.snapshot().upcall_pending == 0
    assert ev.xen.calls[-1].name == "xen_version"


def test_scan_order_is_words_then_bits_lowest_first(ev):
    ports = [4095, 130, 64, 3, 0, 63, 65, 2000]
    bind_all(ev, ports)
    for port in ports:
        ev.raise_event(port)
    ev.enable()
    assert by_upcall(ev.log) == [sorted(ports)]
    snap = ev.snapshot()
    assert snap.stats["upcalls"] == 1
    assert snap.stats["words"] == len({p // 64 for p in ports})
    assert snap.stats["events"] == len(ports)


def test_masked_port_waits_and_unmask_delivers_once(ev):
    ev.bind(7)
    ev.enable()
    ev.mask(7)
    ev.raise_event(7)
    snap = ev.snapshot()
    assert snap.selector == 0 and snap.upcall_pending == 0
    assert ev.deliver() == []
    ev.unmask(7)
    assert [(d.port, d.during) for d in ev.log] == [(7, "unmask")]
    ev.unmask(7)
    ev.deliver()
    assert ev.count(7) == 1


def test_unmask_while_disabled_raises_the_upcall_for_later(ev):
    ev.bind(100)
    ev.mask(100)
    ev.raise_event(100)
    ev.unmask(100)
    snap = ev.snapshot()
    assert ev.log == [] and snap.upcall_pending == 1
    assert snap.selector == 1 << 1
    ev.enable()
    assert [d.port for d in ev.log] == [100]


def test_save_restore_nests(ev):
    ev.bind(1)
    ev.enable()
    outer = ev.save()
    inner = ev.save()
    ev.raise_event(1)
    ev.restore(inner)
    assert (outer, inner, ev.log) == (0, 1, [])
    ev.restore(outer)
    assert [d.port for d in ev.log] == [1] and not ev.disabled
    with pytest.raises(KernelPanic, match="flags > 1"):
        ev.restore(2)


# --- the upcall's rules ---------------------------------------------------------

def test_upcall_entered_with_events_enabled_panics(ev):
    ev.enable()
    with pytest.raises(KernelPanic, match="entered with events enabled"):
        ev.kernel.do_hypervisor_callback(ev.ffi.NULL)


def test_spurious_upcall_is_counted(ev):
    ev.bind(4)
    ev.raise_event(4)
    ev.clear(4)                      # gone before the upcall looks
    ev.enable()
    assert ev.log == [] and ev.snapshot().stats["spurious"] == 1


def test_handler_masking_a_later_port_defers_it(ev):
    ev.bind(1, lambda port: ev.kernel.mask_evtchn(2))
    ev.bind(2)
    ev.raise_event(1)
    ev.raise_event(2)
    ev.enable()
    assert [d.port for d in ev.log] == [1]
    assert ev.snapshot().pending_ports() == [2]
    ev.unmask(2)
    assert [d.port for d in ev.log] == [1, 2]


def test_handler_clearing_a_later_port_drops_it(ev):
    ev.bind(1, lambda port: ev.kernel.clear_evtchn(3))
    ev.bind(3)
    ev.raise_event(1)
    ev.raise_event(3)
    ev.enable()
    assert [d.port for d in ev.log] == [1] and ev.count(3) == 0


def test_reraise_during_handler_is_a_new_upcall(ev):
    runs = []

    def again(port: int) -> None:
        runs.append(port)
        if len(runs) < 3:
            ev.xen.set_pending(port)

    ev.bind(5, again)
    ev.raise_event(5)
    ev.enable()
    assert runs == [5, 5, 5]
    assert [d.upcall for d in ev.log] == [1, 2, 3]


def test_event_storm_is_stopped(ev):
    ev.bind(5, lambda port: ev.xen.set_pending(port))
    ev.raise_event(5)
    with pytest.raises(EventStorm):
        ev.enable()


def test_handler_exception_reaches_the_caller(ev):
    def boom(port: int) -> None:
        raise RuntimeError(f"handler of {port}")

    ev.bind(6, boom)
    ev.raise_event(6)
    with pytest.raises(RuntimeError, match="handler of 6"):
        ev.enable()
    assert ev.count(6) == 1


def test_unhandled_port_is_counted_and_cleared(ev):
    ev.kernel.unmask_evtchn(8)       # unmasked behind the table's back
    ev.raise_event(8)
    ev.enable()
    snap = ev.snapshot()
    assert snap.stats["unhandled"] == 1 and 8 not in snap.pending_ports()


def test_kernel_rejects_ports_out_of_range(ev):
    with pytest.raises(KernelPanic, match="mask_evtchn: port 4096"):
        ev.kernel.mask_evtchn(NR_PORTS)


# --- hypercalls: Python's Xen --------------------------------------------------------

def test_loopback_channel(ev):
    a, b = ev.open_loopback()
    assert (a, b) == (1, 2), "Xen hands out the lowest free ports, never 0"
    assert ev.snapshot().pending_ports() == [b], "Xen sets a new binding"
    ev.clear(b)
    bind_all(ev, [a, b])
    ev.enable()
    ev.notify(a)
    ev.notify(b)
    assert [(d.port, d.during) for d in ev.log] == [(b, "notify"),
                                                   (a, "notify")]


def test_hypercall_errors(ev):
    k, ffi = ev.kernel, ev.ffi
    port = ffi.new("evtchn_port_t *")
    assert k.evtchn_alloc_unbound(5, port) == -errno.ESRCH
    assert k.evtchn_bind_interdomain(DOMID_SELF, 42, port) == -errno.EINVAL
    assert k.notify_remote_via_evtchn(42) == -errno.EINVAL
    assert k.evtchn_close(42) == -errno.EINVAL
    assert k.evtchn_alloc_unbound(DOMID_SELF, port) == 0
    assert k.notify_remote_via_evtchn(port[0]) == 0, "unbound: dropped"
    assert ev.snapshot().pending_ports() == []


def test_closing_one_end_leaves_the_other_unbound(ev):
    a, b = ev.open_loopback()
    bind_all(ev, [a, b])
    ev.unbind(b)
    assert ev.xen.ports[a].state == "unbound"
    ev.notify(a)
    assert ev.snapshot().pending_ports() == []
    with pytest.raises(EventError):
        ev.unbind(b)


def test_virq_binding(ev):
    port = ev.bind_virq(ev.lib.VIRQ_TIMER)
    assert ev.xen.virqs == {0: port}
    with pytest.raises(EventError) as info:
        ev.bind_virq(ev.lib.VIRQ_TIMER)
    assert info.value.errno == errno.EEXIST
    ev.enable()
    ev.raise_virq(ev.lib.VIRQ_TIMER)
    assert ev.deliver()[0].port == port
    assert ev.kernel.notify_remote_via_evtchn(port) == -errno.EINVAL
    ev.unbind(port)
    assert ev.xen.virqs == {}
    with pytest.raises(ValueError):
        ev.xen.raise_virq(ev.lib.VIRQ_TIMER)


def test_bind_virq_closes_the_port_if_the_slot_is_taken(ev):
    ev.bind(1)                       # the kernel's slot; Xen's port 1 free
    with pytest.raises(EventError) as info:
        ev.bind_virq(ev.lib.VIRQ_TIMER)
    assert info.value.errno == errno.EBUSY
    assert ev.xen.virqs == {} and 1 not in ev.xen.ports
    assert [c.name for c in ev.xen.calls[-2:]] == ["event_channel_op"] * 2


def test_force_evtchn_callback_is_xen_version(ev):
    ev.kernel.force_evtchn_callback()
    call = ev.xen.calls[-1]
    assert (call.name, call.result) == ("xen_version", XEN_VERSION)
    assert "delivers" in call.note


def test_selftest_passes_with_python_as_xen(ev):
    ok, text = ev.selftest()
    assert ok, text
    assert "FAIL" not in text and text.count("events: PASS") == 13


def test_selftest_catches_an_unmask_that_forgets_to_reraise(kernel_copy):
    from minios_lab.build.units import load
    from minios_lab.events import EventXen
    edit(kernel_copy / "events.c", "    if (!test_bit(port, pending_bits()))",
         "    if (1)")
    xen = EventXen()
    kernel = load("events", kernel_dir=kernel_copy, hypervisor=xen)
    xen.connect(kernel)
    kernel.init_events()
    assert kernel.events_selftest() != 0
    assert "events: FAIL unmask: A's handler ran 0 time(s)" in \
        xen.console_text


# --- random sequences against a model --------------------------------------------

PORTS = [0, 1, 5, 63, 64, 130, 2047, 4095]   # bound: several words
UNBOUND = 200                                # raised, never delivered
ALL = PORTS + [UNBOUND]


class EventModel(RuleBasedStateMachine):
    """The kernel's event code against sets of ports and one flag."""

    def __init__(self) -> None:
        super().__init__()
        self.ev = EventChannels()
        bind_all(self.ev, PORTS)
        self.pending: set[int] = set()
        self.masked: set[int] = {UNBOUND}
        self.disabled = True
        self.saved: list[int] = []
        self.seen = 0

    # -- checking what the last operation delivered ----------------------------
    def take_deliveries(self) -> list:
        new = self.ev.log[self.seen:]
        self.seen = len(self.ev.log)
        for d in new:
            assert not self.disabled, f"delivered while disabled: {d}"
            assert d.masked, "the upcall must run with events masked"
            assert d.port in self.pending, f"delivered twice: {d}"
            assert d.port not in self.masked, f"delivered while masked: {d}"
            self.pending.discard(d.port)
        for group in by_upcall(new):
            assert group == sorted(group), f"scan order broken: {group}"
        return new

    def deliverable(self) -> set[int]:
        return self.pending - self.masked

    def assert_all_delivered(self) -> None:
        assert not self.deliverable(), f"lost: {sorted(self.deliverable())}"

    # -- rules --------------------------------------------------------------------
    @rule(port=st.sampled_from(ALL))
    def raise_event(self, port: int) -> None:
        fresh = self.ev.raise_event(port)
        assert fresh == (port not in self.pending)
        self.pending.add(port)
        assert self.take_deliveries() == [], "Xen's bits alone deliver nothing"

    @rule(port=st.sampled_from(PORTS))
    def mask(self, port: int) -> None:
        self.ev.mask(port)
        self.masked.add(port)
        assert self.take_deliveries() == []

    @rule(port=st.sampled_from(PORTS))
    def unmask(self, port: int) -> None:
        self.ev.unmask(port)
        self.masked.discard(port)
        self.take_deliveries()
        if not self.disabled and port in self.pending:
            # Not delivered only if an upcall was already owed (Python
            # raised without returning to the guest): the next return.
            assert self.ev.snapshot().upcall_pending == 1

    @rule()
    def disable(self) -> None:
        self.ev.disable()
        self.disabled = True
        assert self.take_deliveries() == []

    @rule()
    def enable(self) -> None:
        self.ev.enable()
        self.disabled = False
        self.take_deliveries()
        self.assert_all_delivered()

    @rule()
    def save(self) -> None:
        self.saved.append(self.ev.save())
        assert self.saved[-1] == int(self.disabled)
        self.disabled = True
        assert self.take_deliveries() == []

    @precondition(lambda self: self.saved)
    @rule()
    def restore(self) -> None:
        flags = self.saved.pop()
        self.ev.restore(flags)
        self.disabled = bool(flags)
        self.take_deliveries()
        if not self.disabled:
            self.assert_all_delivered()

    @rule()
    def deliver(self) -> None:
        self.ev.deliver()
        self.take_deliveries()
        if not self.disabled:
            self.assert_all_delivered()

    # -- invariants ------------------------------------------------------------------
    @invariant()
    def bits_match_the_model(self) -> None:
        snap = self.ev.snapshot()
        assert set(snap.pending_ports()) == self.pending
        assert set(snap.masked_ports()) & set(ALL) == self.masked
        assert snap.upcall_mask == int(self.disabled)

    @invariant()
    def nothing_deliverable_is_forgotten(self) -> None:
        # No lost event: what is deliverable has an upcall owed for it.
        if self.deliverable():
            snap = self.ev.snapshot()
            assert snap.upcall_pending == 1
            for port in self.deliverable():
                assert snap.selector >> (port // 64) & 1


EventModel.TestCase.settings = settings(max_examples=150,
                                        stateful_step_count=40,
                                        deadline=None)
TestEventModel = EventModel.TestCase
