"""Xen's time records and their arithmetic, in exact Python integers.

The reference ``scale_delta`` the kernel's C is checked against, the
mul/shift pair Xen would choose for a TSC frequency, and the plain records
(:class:`TimeRecord`, :class:`Snapshot`, :class:`WallClock`) the clock
hands out.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


MASK64 = (1 << 64) - 1
NSEC_PER_SEC = 10**9
DEFAULT_TSC_HZ = 3_000_000_000
DEFAULT_WALLCLOCK = (1_700_000_000, 0)  # 2023-11-14 22:13:20 UTC



# --- reference arithmetic ----------------------------------------------------

def scale_delta_reference(delta: int, mul: int, shift: int) -> int:
    """What scale_delta() must return, in exact integer arithmetic: the
    shift is done on a 64-bit value (bits shifted out are lost, as in C),
    the multiply and the >> 32 exactly."""
    if shift >= 64 or shift <= -64:
        return 0
    shifted = (delta << shift) & MASK64 if shift >= 0 else delta >> -shift
    return (shifted * mul) >> 32


def time_scale(tsc_hz: int) -> tuple[int, int]:
    """(mul, shift) for a TSC of tsc_hz, chosen as Xen does: the shift that
    puts mul, the ns per shifted tick times 2^32, in [2^31, 2^32)."""
    if tsc_hz <= 0:
        raise ValueError("tsc_hz must be positive")
    for shift in range(-31, 32):
        # mul = 10^9 * 2^32 / (tsc_hz * 2^shift)
        num, den = NSEC_PER_SEC << 32, tsc_hz
        num, den = (num, den << shift) if shift >= 0 else (num << -shift, den)
        mul = num // den
        if (1 << 31) <= mul < (1 << 32):
            return mul, shift
    raise ValueError(f"no 32-bit scale for a {tsc_hz} Hz TSC")


@dataclass(frozen=True)
class ScaleSteps:
    """scale_delta() one step at a time, as kernel/time.c does it."""

    delta: int
    mul: int
    shift: int
    shifted: int   # delta << shift (or >> -shift), kept to 64 bits
    hi: int        # its upper 32 bits
    lo: int        # its lower 32 bits
    hi_mul: int    # hi * mul: the product's bits 32..95, already >> 32
    lo_mul: int    # lo * mul: bits 0..63 of the product
    result: int    # hi_mul + (lo_mul >> 32)


def scale_steps(delta: int, mul: int, shift: int) -> ScaleSteps:
    """The intermediate values of the split 64x32-bit multiply."""
    shifted = 0 if abs(shift) >= 64 else (
        (delta << shift) & MASK64 if shift >= 0 else delta >> -shift)
    hi, lo = shifted >> 32, shifted & 0xFFFFFFFF
    return ScaleSteps(delta, mul, shift, shifted, hi, lo, hi * mul, lo * mul,
                      hi * mul + ((lo * mul) >> 32))


@dataclass(frozen=True)
class TimeRecord:
    """A vcpu_time_info's contents, without its version."""

    system_time: int
    tsc_timestamp: int
    mul: int
    shift: int

    def at(self, tsc: int) -> int:
        """System time (ns) at tsc, by the reference arithmetic."""
        delta = max(tsc - self.tsc_timestamp, 0)
        return self.system_time + scale_delta_reference(delta, self.mul,
                                                        self.shift)

    def tsc_for(self, system_ns: int) -> int:
        """The first TSC value at which this record says system_ns."""
        if system_ns <= self.system_time:
            return self.tsc_timestamp
        want = system_ns - self.system_time
        lo, hi = 0, 1
        while scale_delta_reference(hi, self.mul, self.shift) < want:
            hi *= 2
            if hi > MASK64:
                raise ValueError(f"no TSC value gives {system_ns} ns")
        while lo < hi:  # smallest delta with scale(delta) >= want
            mid = (lo + hi) // 2
            if scale_delta_reference(mid, self.mul, self.shift) < want:
                lo = mid + 1
            else:
                hi = mid
        return self.tsc_timestamp + lo


@dataclass(frozen=True)
class Snapshot:
    """What read_time_info() copied, and the time it stands for."""

    version: int
    record: TimeRecord
    tsc: int
    retries: int
    system_time_now: int  # snapshot_system_time(): ns at tsc


@dataclass(frozen=True)
class WallClock:
    """Seconds and ns since 1970-01-01 UTC."""

    sec: int
    nsec: int

    @property
    def datetime(self) -> dt.datetime:
        base = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return base + dt.timedelta(seconds=self.sec,
                                   microseconds=self.nsec // 1000)


@dataclass(frozen=True)
class ReadEvent:
    """One load of a version counter by the kernel, seen by Python's Xen."""

    record: str        # "time" or "wallclock"
    loaded: int        # the version the kernel got
    steps: list[str]   # what Xen wrote right after that load
