"""Graded checks of chapter 07: the upcall's scan, delivery, masking and
enabling events."""
from __future__ import annotations

from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)


def _events(ctx: Context, ports=(3, 5, 70, 200)):
    from minios_lab.events import EventChannels
    ev = EventChannels(kernel_dir=ctx.kernel_dir)
    for port in ports:
        ev.bind(port)
    ev.enable()          # a vCPU starts with events disabled
    return ev


def _ports(deliveries) -> list[int]:
    return [d.port for d in deliveries]


@check("07", "scan_word", 5, "one upcall delivers every pending port in order")
def scan(ctx: Context) -> None:
    ev = _events(ctx)
    ev.disable()
    for port in (200, 5, 70, 3):
        ev.raise_event(port)
    ev.enable()
    got = _ports(ev.log)
    if got != [3, 5, 70, 200]:
        raise CheckFailed(f"ports delivered {got}, expected [3, 5, 70, 200] "
                          f"(lowest word first, lowest bit first)")


@check("07", "do_hypervisor_callback", 5, "the upcall clears its flags")
def upcall(ctx: Context) -> None:
    ev = _events(ctx)
    ev.raise_event(5)
    got = _ports(ev.deliver())
    snap = ev.snapshot()
    if got != [5] or snap.upcall_pending or snap.selector:
        raise CheckFailed(f"after one delivery of port 5: delivered {got}, "
                          f"upcall_pending {snap.upcall_pending}, selector "
                          f"{snap.selector:#x}; expected [5], 0, 0")
    if _ports(ev.deliver()):
        raise CheckFailed("a second return to the guest delivered again")


def _with_70_waiting(ctx: Context):
    """Events with port 70 masked and raised: it must wait."""
    ev = _events(ctx)
    ev.mask(70)
    ev.raise_event(70)
    return ev


@check("07", "scan_word", 5, "a handler runs once, masked ports wait")
def deliver(ctx: Context) -> None:
    ev = _with_70_waiting(ctx)
    ev.raise_event(3)
    got = _ports(ev.deliver())
    if got != [3]:
        raise CheckFailed(f"with 70 masked, delivered {got}, expected [3]")
    if 3 in ev.snapshot().pending_ports():
        raise CheckFailed("port 3 still pending after its handler ran")


@check("07", "unmask_evtchn", 5, "unmasking delivers what waited, once")
def unmask(ctx: Context) -> None:
    ev = _with_70_waiting(ctx)
    ev.deliver()
    ev.unmask(70)
    ev.deliver()
    got = _ports(ev.log)
    if got != [70]:
        raise CheckFailed(f"port 70 raised while masked, then unmasked: "
                          f"delivered {got}, expected exactly [70]")


guest_check("07", "unmask_evtchn", 5,
            "unmask delivers on real Xen", "events",
            (r"^events: PASS unmask: A's handler ran 1 time",
             "unmask in the guest"))


@check("07", "local_irq_enable", 5, "enabling events delivers what waited")
def enable(ctx: Context) -> None:
    ev = _events(ctx)
    ev.disable()
    ev.raise_event(5)
    ev.deliver()
    if ev.log:
        raise CheckFailed("a handler ran while events were disabled")
    ev.enable()
    if _ports(ev.log) != [5]:
        raise CheckFailed(f"enable() delivered {_ports(ev.log)}, expected [5]")


guest_check("07", "local_irq_enable", 5,
            "events held and delivered on real Xen", "events",
            (r"^events: PASS enable: B's handler ran 1 time",
             "enable in the guest"))
