"""Graded checks of chapter 08: scale_delta and the version protocol."""
from __future__ import annotations

import random

from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)


def _clock(ctx: Context):
    from minios_lab.time import Clock
    return Clock(kernel_dir=ctx.kernel_dir)


@check("08", "scale_delta", 5, "TSC ticks to ns, exact, no overflow")
def scale(ctx: Context) -> None:
    from minios_lab.time import scale_delta_reference
    clock = _clock(ctx)
    rng = random.Random(8)
    cases = [(0, 1 << 31, 0), (1, 0xFFFFFFFF, 0), ((1 << 64) - 1, 0xFFFFFFFF, 0),
             (3_000_000_000, 0xF3CF4ACC, -1), ((1 << 40) + 7, 0x80000000, 3)]
    cases += [(rng.getrandbits(rng.choice((20, 40, 63))), rng.getrandbits(32),
               rng.randint(-31, 31)) for _ in range(200)]
    for delta, mul, shift in cases:
        got, want = clock.scale_delta(delta, mul, shift), \
            scale_delta_reference(delta, mul, shift)
        if got != want:
            raise CheckFailed(f"scale_delta({delta:#x}, {mul:#x}, {shift}) "
                              f"= {got}, expected {want}")


# Only the count: how late ticks come depends on the host's load.
guest_check("08", "scale_delta", 5,
            "every timer tick counted on real Xen", "time",
            (r"^time: PASS 100 of 100 ticks counted$", "ticks"),
            cmdline="tick_us=1000 ticks=100")


@check("08", "read_time_info", 5, "an odd version is waited out")
def version(ctx: Context) -> None:
    clock = _clock(ctx)
    clock.hold_odd(3)
    snap = clock.read()
    if snap.retries < 2 or snap.version % 2:
        raise CheckFailed(f"read_time_info() returned version {snap.version} "
                          f"after {snap.retries} retries while Xen held the "
                          f"version odd for 3 reads")


@check("08", "read_time_info", 5, "a torn copy is never returned")
def torn(ctx: Context) -> None:
    from minios_lab.time import TimeRecord
    clock = _clock(ctx)
    old = clock.read().record
    new = TimeRecord(old.system_time + 10**9, old.tsc_timestamp + 3 * 10**9,
                     old.mul, old.shift)
    clock.tear_next_read(new)
    got = clock.read().record
    if got not in (old, new):
        raise CheckFailed(f"read_time_info() returned a mix of two records: "
                          f"{got}")


guest_check("08", "read_time_info", 5,
            "monotonic time on real Xen", "time",
            (r"^time: PASS monotonic_clock\(\) never went back",
             "monotonic clock"))


def _timer(ctx: Context, ticks: int, latency=None):
    from minios_lab.time import Clock, run_timer
    clock = Clock(tsc_hz=2_100_000_000, system_time=10**9,
                  kernel_dir=ctx.kernel_dir)
    return run_timer(clock, 1000, ticks, latency=latency)


@check("08", "next_deadline", 5, "deadlines one period apart, late ones "
       "caught up")
def deadlines(ctx: Context) -> None:
    punctual = _timer(ctx, 20).report
    if punctual.intervals_us != [1000] * 20:
        raise CheckFailed(f"punctual ticks came {punctual.intervals_us} us "
                          f"apart, expected 1000 each")
    late = _timer(ctx, 60, lambda wake: 3_500_000 if wake == 7 else 0).report
    if late.counters["missed"] == 0 or len(late.intervals_us) != 60:
        raise CheckFailed(f"one wake 3.5 periods late: missed "
                          f"{late.counters['missed']} (expected > 0), "
                          f"{len(late.intervals_us)} of 60 ticks")


@check("08", "timer_wait", 5, "the idle loop blocks until every tick came")
def idle_loop(ctx: Context) -> None:
    run = _timer(ctx, 5)
    blocks = run.calls.count("sched_op")
    if len(run.report.intervals_us) != 5 or blocks != 5:
        raise CheckFailed(f"timer_wait returned after "
                          f"{len(run.report.intervals_us)} of 5 ticks with "
                          f"{blocks} SCHEDOP_block calls; expected 5 and 5")
