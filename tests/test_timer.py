"""The timer (kernel/timer.c) in the host build, and the report parser.

Python's TimerHypervisor plays Xen: a block sleeps until the armed
deadline plus a chosen lateness, then VIRQ_TIMER runs the kernel's upcall.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minios_lab.time import Clock, SleepsForever, run_timer
from minios_lab.time import TimeReportError, parse_time_section

MS = 1_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock(tsc_hz=2_100_000_000, system_time=10**9)


def test_punctual_ticks_are_one_period_apart(clock):
    run = run_timer(clock, tick_us=1000, ticks=50)
    r = run.report
    assert r.intervals_us == [1000] * 50
    assert r.interval_us["ticks"] == 50 and r.interval_us["period"] == 1000
    assert r.counters == {"missed": 0, "extra": 0, "backwards": 0}
    assert 0 <= r.late_us["max"] < 0.01   # a TSC tick of rounding at most


def test_the_timer_is_set_up_and_torn_down_with_hypercalls(clock):
    run = run_timer(clock, tick_us=500, ticks=3)
    assert run.calls[:3] == ["vcpu_op", "event_channel_op", "set_timer_op"]
    assert run.calls.count("sched_op") == 3          # one block per tick
    xen = [c for c in run.calls if c != "console_io"]   # not the report
    assert xen[-2:] == ["set_timer_op", "event_channel_op"]
    hv = clock.hypervisor
    assert hv.periodic_ns == 0 and hv.deadline == 0 and hv.virqs == {}


def test_every_thousand_ticks_the_system_time_is_printed(clock):
    start = clock.monotonic_clock()
    run = run_timer(clock, tick_us=100, ticks=2500)
    assert [t for t, _ in run.report.tick_reports] == [1000, 2000]
    for tick, ns in run.report.tick_reports:
        assert ns == start + tick * 100_000


def test_late_ticks_are_caught_up(clock):
    # Every 10th wake comes 3.5 periods late: the deadlines behind are
    # fired at once, so the count keeps up with the time.
    run = run_timer(clock, 1000, 200,
                    latency=lambda wake: 3_500_000 if wake % 10 == 5 else 0)
    r = run.report
    assert r.counters["missed"] > 0 and len(r.intervals_us) == 200
    assert min(r.intervals_us) == 0 and max(r.intervals_us) == 4500
    assert abs(r.interval_us["mean"] - 1000) < 20


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), period_us=st.integers(100, 5000),
       ticks=st.integers(1, 300))
def test_intervals_add_up_to_the_elapsed_time(seed, period_us, ticks):
    rng = random.Random(seed)
    c = Clock()
    start = c.monotonic_clock()
    late_max = 3 * period_us * 1000
    run = run_timer(c, period_us, ticks,
                    latency=lambda wake: rng.randrange(0, late_max))
    r = run.report
    assert len(r.intervals_us) == ticks
    elapsed_us = (c.lib.timer_state.last_ns - start) / 1000
    assert abs(sum(r.intervals_us) - elapsed_us) <= ticks   # rounding
    assert r.late_us["min"] >= 0
    assert r.checks == []        # the host run prints no verdicts


def test_samples_stop_at_the_buffer_but_ticks_go_on(clock):
    cap = clock.lib.TIMER_SAMPLES_MAX
    run = run_timer(clock, 100, cap + 10)
    assert len(run.report.intervals_us) == cap
    assert run.report.interval_us["ticks"] == cap + 10


def test_timer_tick_counts_extra_and_backwards(clock):
    k, t = clock.kernel, clock.ffi.addressof(clock.lib, "timer_state")
    k.timer_reset(t, 1 * MS, 2)
    t.last_ns = t.start_ns = 5 * MS
    t.deadline = 6 * MS
    assert k.timer_tick(t, 6 * MS) == 7 * MS    # next deadline
    assert k.timer_tick(t, 5 * MS) == 0         # went back, and the last
    assert (t.ticks, t.backwards, t.extra) == (2, 1, 0)
    assert k.timer_tick(t, 9 * MS) == 0
    assert t.extra == 1 and list(t.interval_ns[0:2]) == [1 * MS, 0]


def test_blocking_with_nothing_armed_never_wakes(clock):
    clock._activate()
    clock.kernel.init_events()
    t = clock.ffi.addressof(clock.lib, "timer_state")
    clock.kernel.timer_reset(t, MS, 1)
    with pytest.raises(SleepsForever, match="periodic timer"):
        clock.kernel.timer_wait(t)


def test_a_deadline_in_the_past_fires_at_once(clock):
    clock._activate()
    clock.kernel.init_events()
    assert clock.kernel.timer_start(MS, 5) == 0
    clock.kernel.local_irq_disable()          # hold the upcall back
    hv = clock.hypervisor
    port = hv.virqs[clock.lib.VIRQ_TIMER]
    hv.do_set_timer_op(clock.now() - 1)
    assert clock.shared.evtchn_pending[0] & (1 << port)
    assert hv.deadline == 0
    clock.kernel.timer_stop()


# --- the parser --------------------------------------------------------------

SECTION = """\
time: record version 2 tsc_timestamp 2081677426 system_time 854310840 mul 0xf3cf4ec1 shift -1
time: tsc_khz 2099996
time: PASS the time record is filled in
time: monotonic 10000 reads in 1941496 ns, retries 0
time: wall clock 2026-11-28 19:36:43.783272300 UTC
time: timer tick_us 1000 ticks 14: one-shot set_timer_op, re-armed by the handler
timer: tick 1000 at system time 3.000000123 s
time: intervals_us 0: 5958 364 1490 275 4947 1139 6632 335 2176 792 4763 945
time: intervals_us 12: 391 879
time: interval_us min 26.671 mean 2704.534 max 11615.721 period 1000 ticks 14
time: late_us min -25.246 mean 2020.402 max 10783.812 missed 3 extra 0 backwards 0
time: FAIL 14 ticks took 37863 us: 14000 us, +1/4 +50 ms at most
"""


def test_parse_a_section():
    r = parse_time_section(SECTION.splitlines())
    assert r.record == {"version": 2, "tsc_timestamp": 2081677426,
                        "system_time": 854310840, "mul": 0xF3CF4EC1,
                        "shift": -1}
    assert r.tsc_khz == 2099996 and r.monotonic["reads"] == 10000
    assert (r.wallclock.year, r.wallclock.microsecond) == (2026, 783272)
    assert (r.tick_us, r.ticks_requested) == (1000, 14)
    assert r.tick_reports == [(1000, 3_000_000_123)]
    assert len(r.intervals_us) == 14 and r.intervals_us[-1] == 879
    assert r.interval_us["mean"] == 2704.534 and r.late_us["min"] == -25.246
    assert r.counters == {"missed": 3, "extra": 0, "backwards": 0}
    assert not r.passed and r.failures() == [
        "14 ticks took 37863 us: 14000 us, +1/4 +50 ms at most"]
    assert not r.skipped


def test_parse_detects_lost_interval_lines():
    lines = [l for l in SECTION.splitlines() if "intervals_us 0:" not in l]
    with pytest.raises(TimeReportError, match="starting at 12"):
        parse_time_section(lines)


def test_parse_skipped_timer_and_noise():
    r = parse_time_section(["(XEN) something", "time: ticks=0: timer skipped",
                            "time: PASS a", "  time: PASS b  "])
    assert r.skipped and r.passed and r.intervals_us == []
    assert not parse_time_section([]).passed
