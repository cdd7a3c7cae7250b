"""The clock (kernel/time.c) in the host build, with Python as Xen.

scale_delta against exact integer arithmetic, Xen's version protocol with
updates interleaved at every possible point, monotonic_clock, the wall
clock and the calendar.
"""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minios_lab.errors import KernelPanic
from minios_lab.time import (MASK64, Clock, TimeRecord, WallClock,
                             scale_delta_reference, scale_steps, time_scale,
                             trace_clock)

U64 = st.integers(0, MASK64)
U32 = st.integers(0, (1 << 32) - 1)
# tsc_shift is an int8_t in <xen/xen.h>: every value it can hold. Xen's own
# choice stays within a few steps of 0; the whole range must still be
# defined, shifts of 64 or more included.
INT8 = st.integers(-128, 127)
SHIFTS = st.one_of(st.integers(-31, 31), INT8)
FREQ = st.integers(1_000_000, 100_000_000_000)  # 1 MHz .. 100 GHz
EPOCH_MAX = 253402300799  # 9999-12-31 23:59:59


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fresh() -> Clock:
    return Clock(tsc_hz=2_100_000_000, system_time=5_000_000_000)


# --- scale_delta -------------------------------------------------------------

@settings(max_examples=3000)
@given(delta=U64, mul=U32, shift=SHIFTS)
def test_scale_delta_matches_exact_arithmetic(clock, delta, mul, shift):
    assert clock.scale_delta(delta, mul, shift) == \
        scale_delta_reference(delta, mul, shift)


@pytest.mark.parametrize("delta, mul, shift", [
    (MASK64, (1 << 32) - 1, 0),        # the widest product: 96 bits
    (MASK64, (1 << 32) - 1, -1),
    (MASK64, (1 << 32) - 1, 31),       # shifted bits fall off the top
    (MASK64, 1, 63), (1, (1 << 32) - 1, 63),
    (MASK64, (1 << 32) - 1, 64), (MASK64, (1 << 32) - 1, -64),
    (MASK64, (1 << 32) - 1, 127), (MASK64, (1 << 32) - 1, -128),
    (1 << 32, 1 << 31, 0), ((1 << 32) - 1, (1 << 32) - 1, 0),
    (0, (1 << 32) - 1, 5), (12345, 0, 3),
])
def test_scale_delta_extremes(clock, delta, mul, shift):
    got = clock.scale_delta(delta, mul, shift)
    assert got == scale_delta_reference(delta, mul, shift)
    assert 0 <= got <= MASK64


def test_scale_delta_reference_by_hand():
    # One tick of a 2 GHz TSC is 0.5 ns: mul 2^31, no shift.
    assert scale_delta_reference(2_000_000_000, 1 << 31, 0) == 10**9
    assert scale_delta_reference(3, 1 << 31, 0) == 1          # floor
    assert scale_delta_reference(4, 1 << 31, -1) == 1          # 4 >> 1 = 2
    assert scale_delta_reference(1 << 63, 1 << 31, 1) == 0     # shifted out
    assert scale_delta_reference(5, 1 << 31, 64) == 0


@given(freq=FREQ)
def test_time_scale_is_what_xen_would_choose(clock, freq):
    mul, shift = time_scale(freq)
    assert (1 << 31) <= mul < (1 << 32) and -31 <= shift <= 31
    # One second of ticks scales to one second, within the precision of a
    # 32-bit mul and of the bits a right shift drops.
    got = clock.scale_delta(freq, mul, shift)
    tick_ns = 10**9 / freq
    assert abs(got - 10**9) <= 10**9 * 2**-31 + tick_ns * 2**max(-shift, 0) + 1
    assert abs(clock.kernel.tsc_khz(mul, shift) - freq / 1000) <= \
        freq / 1000 * 2**-30 + 2**max(-shift, 0)


@pytest.mark.parametrize("freq", [0, -5])
def test_time_scale_refuses_nonsense(freq):
    with pytest.raises(ValueError):
        time_scale(freq)


# --- the version protocol ----------------------------------------------------

def test_quiet_read_is_the_record(fresh):
    fresh.advance_tsc(21_000)
    snap = fresh.read()
    assert snap.retries == 0 and snap.version == fresh.version == 2
    assert snap.record == fresh.record and snap.tsc == 21_000
    # 21000 ticks of 2.1 GHz are 10 us, less the fraction mul truncates.
    assert snap.system_time_now == fresh.record.at(21_000)
    assert snap.system_time_now - 5_000_000_000 in (9_999, 10_000)


@pytest.mark.parametrize("reads", [1, 2, 7, 100])
def test_odd_version_is_retried(fresh, reads):
    new = TimeRecord(7_000_000_000, 0, *time_scale(1_000_000_000))
    fresh.hold_odd(reads, new)
    assert fresh.version % 2 == 1
    snap = fresh.read()
    assert snap.retries == reads
    assert snap.record == new and snap.version == 4
    odd_loads = [e for e in fresh.log if e.loaded % 2 == 1]
    assert len(odd_loads) == reads


def test_torn_copy_is_retried(fresh):
    old = fresh.record
    new = TimeRecord(old.system_time + 1000, 999, old.mul // 2, old.shift + 1)
    fresh.tear_next_read(new)
    snap = fresh.read()
    assert snap.retries == 1 and snap.record == new and snap.version == 4
    first, second = fresh.log[0], fresh.log[1]
    assert first.loaded == 2 and first.steps == \
        ["version odd", "tsc_timestamp", "system_time"]
    assert second.loaded == 3   # changed under the kernel: copy discarded


record_st = st.builds(TimeRecord, system_time=st.integers(0, 1 << 62),
                      tsc_timestamp=st.integers(0, 1 << 62), mul=U32,
                      shift=st.integers(-8, 8))


@settings(max_examples=300)
@given(records=st.lists(record_st, min_size=1, max_size=5),
       steps=st.lists(st.integers(0, 8), max_size=40))
def test_never_returns_a_torn_record(records, steps):
    """Whatever Xen writes between, or during, the kernel's loads, the copy
    returned is one record exactly as published, with its version."""
    c = Clock()
    published = {2: c.record}
    for i, record in enumerate(records):
        published[4 + 2 * i] = record
    c.interleave(steps, records)
    snap = c.read()
    assert snap.version % 2 == 0
    assert published[snap.version] == snap.record


def test_hold_odd_needs_a_read(fresh):
    with pytest.raises(ValueError):
        fresh.hold_odd(0)


def test_an_update_that_never_ends_panics():
    c = Clock()
    c.hold_odd(5000)
    with pytest.raises(KernelPanic, match="never settled"):
        c.read()


# --- monotonic_clock ---------------------------------------------------------

@settings(max_examples=200)
@given(freq=FREQ, start=st.integers(0, 1 << 50),
       steps=st.lists(st.integers(0, 1 << 40), min_size=1, max_size=20))
def test_monotonic_clock_extrapolates_the_record(freq, start, steps):
    c = Clock(tsc_hz=freq, system_time=start)
    previous = c.monotonic_clock()
    for ticks in steps:
        c.advance_tsc(ticks)
        now = c.monotonic_clock()
        assert now == c.record.at(c.tsc) >= previous
        previous = now


def test_restamp_keeps_time_continuous(fresh):
    fresh.advance_ns(123_456_789)
    before = fresh.monotonic_clock()
    fresh.restamp()                       # what Xen does on each schedule
    assert fresh.record.tsc_timestamp == fresh.tsc
    assert fresh.monotonic_clock() == before and fresh.version == 4


def test_tsc_behind_the_stamp_is_not_extrapolated_backwards(fresh):
    r = fresh.record
    fresh.set_time_info(r.system_time, 10**12, r.mul, r.shift)
    fresh.tsc = 10**12 - 5
    assert fresh.monotonic_clock() == r.system_time


@given(freq=FREQ, ns=st.integers(0, 1 << 45))
def test_tsc_for_is_the_first_tick_at_that_time(freq, ns):
    record = TimeRecord(1000, 77, *time_scale(freq))
    tsc = record.tsc_for(ns)
    assert record.at(tsc) >= ns
    assert tsc == record.tsc_timestamp or record.at(tsc - 1) < ns


def test_advance_ns(fresh):
    fresh.advance_ns(10**9)
    assert fresh.monotonic_clock() - 5_000_000_000 in (10**9, 10**9 + 1)


def test_tsc_is_64_bits(fresh):
    with pytest.raises(ValueError):
        fresh.tsc = 1 << 64


# --- the wall clock ----------------------------------------------------------

@settings(max_examples=300)
@given(sec=U64, nsec=st.integers(0, 10**9 - 1),
       system=st.integers(0, 1 << 60))
def test_wallclock_is_base_plus_system_time(sec, nsec, system):
    c = Clock(system_time=system, wallclock=(sec, nsec))
    base, retries = c.wallclock_base()
    assert (base.sec, base.nsec, retries) == (sec, nsec, 0)
    total = nsec + system
    expected = ((sec + total // 10**9) & MASK64, total % 10**9)
    now = c.wallclock()
    assert (now.sec, now.nsec) == expected


def test_wallclock_uses_sec_hi():
    c = Clock(wallclock=((5 << 32) + 7, 0))
    assert (c.shared.wc_sec_hi, c.shared.wc_sec) == (5, 7)
    assert c.wallclock_base()[0].sec == (5 << 32) + 7


@given(steps=st.lists(st.integers(0, 6), max_size=30),
       walls=st.lists(st.tuples(st.integers(0, 1 << 40),
                                st.integers(0, 10**9 - 1)),
                      min_size=1, max_size=4))
def test_wallclock_version_protocol(steps, walls):
    c = Clock(wallclock=(1, 1))
    c.interleave(steps, wallclocks=walls)
    base, _ = c.wallclock_base()
    assert (base.sec, base.nsec) in [(1, 1)] + list(walls)


def test_wallclock_retry_is_counted():
    c = Clock()
    c.interleave([1, 0, 4], wallclocks=[(1_800_000_000, 5)])
    base, retries = c.wallclock_base()
    assert base == WallClock(1_800_000_000, 5) and retries == 2
    assert c.stats()["wc_retries"] >= 2


def test_wallclock_datetime():
    assert WallClock(1_700_000_000, 999_999).datetime == dt.datetime(
        2023, 11, 14, 22, 13, 20, 999, tzinfo=dt.timezone.utc)


@settings(max_examples=1000)
@given(sec=st.integers(0, EPOCH_MAX))
def test_date_from_unix_matches_the_calendar(clock, sec):
    d = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=sec)
    assert clock.date(sec) == (d.year, d.month, d.day, d.hour, d.minute,
                               d.second)


@pytest.mark.parametrize("sec, expected", [
    (0, (1970, 1, 1, 0, 0, 0)),
    (951782400, (2000, 2, 29, 0, 0, 0)),     # a leap day in a /400 year
    (4107542399, (2100, 2, 28, 23, 59, 59)),  # 2100 is not a leap year
    (EPOCH_MAX, (9999, 12, 31, 23, 59, 59)),
])
def test_date_edges(clock, sec, expected):
    assert clock.date(sec) == expected


@given(sec=st.integers(EPOCH_MAX + 1, MASK64))
def test_date_after_9999_is_refused(clock, sec):
    assert clock.date(sec) is None


def test_snapshot_is_plain_data(fresh):
    fresh.advance_ns(1000)
    snap = fresh.snapshot()
    assert snap["kernel_time"] == snap["reference_time"] == \
        5_000_000_000 + 1000
    assert snap["version"] == 2 and snap["stats"]["reads"] >= 1
    assert isinstance(snap["wallclock"], WallClock)


def test_read_counts_retries_in_stats():
    c = Clock()
    before = c.stats()
    c.hold_odd(3)
    c.read()
    after = c.stats()
    assert after["reads"] == before["reads"] + 1
    assert after["retries"] == before["retries"] + 3


def test_hook_ignores_other_clocks():
    a, b = Clock(system_time=1), Clock(system_time=2)
    a.hold_odd(2)
    assert b.read().retries == 0          # b's page has no update going on
    assert a.read().retries == 2


@given(delta=U64, mul=U32, shift=INT8)
def test_reference_never_exceeds_64_bits(delta, mul, shift):
    assume(mul > 0)
    assert 0 <= scale_delta_reference(delta, mul, shift) <= MASK64


# --- helpers for the plots -------------------------------------------------------

@settings(max_examples=500)
@given(delta=U64, mul=U32, shift=INT8)
def test_scale_steps_add_up(delta, mul, shift):
    s = scale_steps(delta, mul, shift)
    assert s.result == scale_delta_reference(delta, mul, shift)
    assert (s.hi << 32) | s.lo == s.shifted
    assert s.hi_mul < 1 << 64 and s.lo_mul < 1 << 64
    assert s.result == s.hi_mul + (s.lo_mul >> 32)


def test_trace_clock_follows_the_records():
    c = Clock(tsc_hz=2_000_000_000)    # 0.5 ns per tick, exactly
    trace = trace_clock(c, 2000, 30, 10, drift_ppm=[0, 1000])
    assert len(trace.tsc) == len(trace.kernel_ns) == 30
    assert len(trace.stamps) == 3 and trace.shift == 0
    assert trace.muls == [1 << 31, (1 << 31) + (1 << 31) // 1000,
                          (1 << 31) + (1 << 31) // 1000]
    assert trace.kernel_ns[:10] == [1000 * i for i in range(1, 11)]
    assert all(b > a for a, b in zip(trace.kernel_ns, trace.kernel_ns[1:]))
    # After the re-stamp at the 10th sample the clock runs 0.1% fast, one
    # record of 20000 ticks after another.
    assert trace.kernel_ns[-1] - trace.kernel_ns[9] == \
        2 * scale_delta_reference(20000, trace.muls[1], 0) == 20018
