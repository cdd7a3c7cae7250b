"""Graded checks of chapter 11: the console ring's producer (ring_put) and
its wait for space (ring_wait_for_space), with Python as xenconsoled."""
from __future__ import annotations

from minios_lab.classroom.checking import CheckFailed, Context, check

RING = 2048


def _ring(ctx: Context, **kw):
    """A domU console whose start-of-day line has been read."""
    from minios_lab.console_ring import ConsoleRing
    ring = ConsoleRing(kernel_dir=ctx.kernel_dir, **kw)
    ring.run_consoled()
    ring.daemon.output.clear()
    return ring


def _expect_output(ring, want: bytes, what: str) -> None:
    ring.consume()
    got = ring.output
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)))
        raise CheckFailed(f"{what}: xenconsoled read {len(got)} bytes, "
                          f"expected {len(want)}; they differ from byte "
                          f"{first} on")


@check("11", "ring-put", 5, "bytes arrive in order and out_prod counts them")
def put_order(ctx: Context) -> None:
    ring = _ring(ctx)
    start = ring.snapshot().prod
    parts = [b"hello, ", b"dom0", b"", b"!" * 100]
    for part in parts:
        ring.write(part)
    snap, total = ring.snapshot(), sum(map(len, parts))
    if (snap.prod - start) % 2**32 != total:
        raise CheckFailed(f"after writing {total} bytes out_prod moved by "
                          f"{(snap.prod - start) % 2**32}")
    if snap.pending() != b"".join(parts):
        raise CheckFailed(f"the waiting bytes read {snap.pending()[:40]!r}..., "
                          f"expected {b''.join(parts)[:40]!r}...")
    _expect_output(ring, b"".join(parts), "four writes")


@check("11", "ring-put", 5, "the indexes wrap at 2^32 and the slots follow")
def put_wrap(ctx: Context) -> None:
    ring = _ring(ctx, start_index=2**32 - 5 - 62)
    start = ring.snapshot().prod
    data = bytes(range(33, 33 + 90)) * 3
    ring.write(data)
    snap = ring.snapshot()
    if snap.prod != (start + len(data)) % 2**32:
        raise CheckFailed(f"out_prod {snap.prod:#x} after {len(data)} bytes "
                          f"from {start:#x}: expected "
                          f"{(start + len(data)) % 2**32:#x} (32-bit wrap)")
    if snap.out[snap.slot(start)] != data[0] or \
            snap.out[snap.slot(2**32)] != data[2**32 - start]:
        raise CheckFailed("the bytes are not in slot index % 2048 around "
                          "the wrap (MASK_XENCONS_IDX)")
    _expect_output(ring, data, "a write across the wrap")


@check("11", "ring-put", 5, "fills the free space exactly, overwrites nothing")
def put_fill(ctx: Context) -> None:
    ring = _ring(ctx)
    ring.write(b"a" * 1000)
    ring.consume(500)
    ring.write(b"b" * (RING - 500))          # exactly the free space
    snap = ring.snapshot()
    if snap.waiting != RING or snap.stats["yields"] != 0:
        raise CheckFailed(f"after filling the ring exactly: {snap.waiting} "
                          f"bytes waiting, {snap.stats['yields']} yields; "
                          f"expected {RING} and 0")
    _expect_output(ring, b"a" * 1000 + b"b" * (RING - 500),
                   "a ring filled to the last byte")


@check("11", "ring-wait", 5, "a full ring waits until xenconsoled reads")
def wait_full(ctx: Context) -> None:
    ring = _ring(ctx)
    ring.daemon.stall(3)
    data = bytes(i % 253 for i in range(RING + 700))
    ring.write(data)
    yields = ring.stats()["yields"]
    if yields != 4:
        raise CheckFailed(f"xenconsoled stalled for 3 rounds: the guest "
                          f"yielded {yields} times, expected 4 (one "
                          f"SCHEDOP_yield per look at the full ring)")
    _expect_output(ring, data, "a write larger than the ring")


@check("11", "ring-wait", 5, "a lost notification on a full ring is resent")
def wait_lost(ctx: Context) -> None:
    from minios_lab.console_ring import ConsoleStalled
    ring = _ring(ctx)
    ring.daemon.drop_notifications(1)
    data = b"=" * (RING + 300)
    try:
        ring.write(data)
    except ConsoleStalled:
        raise CheckFailed("the first notification was lost and the guest "
                          "waited for ever: notify before each yield") \
            from None
    _expect_output(ring, data, "a full ring with a lost notification")
