"""The clock: a shared_info page Python fills as Xen does, read by kernel/time.c.

Xen's update of a record is a list of steps (version odd, each field,
version even); Python runs some of them each time the kernel loads a
version counter, so a notebook can hold an update in progress or tear a
read (see the package docstring of minios_lab.time).
"""
from __future__ import annotations

import weakref
from pathlib import Path
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load
from minios_lab.time.record import (DEFAULT_TSC_HZ, DEFAULT_WALLCLOCK, MASK64,
                                    NSEC_PER_SEC, ReadEvent, Snapshot,
                                    TimeRecord, WallClock, time_scale)
from minios_lab.xen.timer import TimerHypervisor

# --- Xen's side: versioned updates, step by step -----------------------------

class _Update:
    """One update of a record, as Xen writes it: a queue of named steps."""

    def __init__(self, steps: list[tuple[str, Callable[[], None]]]):
        self.steps = deque(steps)

    def run(self, count: int) -> list[str]:
        done = []
        while self.steps and len(done) < count:
            name, step = self.steps.popleft()
            step()
            done.append(name)
        return done

    @property
    def finished(self) -> bool:
        return not self.steps


class _Schedule:
    """Which updates to run at the kernel's next version reads, how far."""

    def __init__(self) -> None:
        self.pending: deque[_Update] = deque()
        self.current: Optional[_Update] = None
        self.steps_per_read: deque[int] = deque()

    def on_read(self) -> list[str]:
        """Run this read's share of steps. Once the schedule is spent, an
        update left half done is finished, so the kernel always gets out."""
        if self.steps_per_read:
            budget = self.steps_per_read.popleft()
        else:
            budget = len(self.current.steps) if self.current else 0
            self.pending.clear()
        done: list[str] = []
        while len(done) < budget:
            if self.current is None or self.current.finished:
                if not self.pending:
                    break
                self.current = self.pending.popleft()
            done += self.current.run(budget - len(done))
        return done


# The hook is one C callback per extension module, kept for the life of the
# process; it forwards to whichever Clock was used last.
_HOOKS: dict[str, Any] = {}
_CURRENT: dict[str, "weakref.ref[Clock]"] = {}


def _install_hook(kernel: KernelLib) -> None:
    key = kernel.module.__name__
    if key not in _HOOKS:
        def hook(address: Any) -> None:
            ref = _CURRENT.get(key)
            clock = ref() if ref else None
            if clock is not None:
                clock._on_version_read(int(kernel.ffi.cast("uintptr_t",
                                                           address)))
        _HOOKS[key] = kernel.ffi.callback("void(void *)",
                                          hook)
    kernel.lib.host_shared_read_hook = _HOOKS[key]


# --- the clock ---------------------------------------------------------------

TIME_FIELDS = ("tsc_timestamp", "system_time", "tsc_to_system_mul",
               "tsc_shift")


class Clock:
    """kernel/time.c reading a shared_info page that Python keeps as Xen.

    Starts with a TSC of ``tsc_hz`` at 0, system time ``system_time`` and
    the wall clock at ``wallclock`` (seconds, ns since 1970) for system
    time 0.
    """

    def __init__(self, tsc_hz: int = DEFAULT_TSC_HZ, system_time: int = 0,
                 wallclock: tuple[int, int] = DEFAULT_WALLCLOCK,
                 kernel_dir: Optional[Path] = None):
        self.hypervisor = TimerHypervisor(clock=self)
        self.kernel = load("time", kernel_dir=kernel_dir,
                           hypervisor=self.hypervisor)
        self.ffi, self.lib = self.kernel.ffi, self.kernel.lib
        self.hypervisor.connect(self.kernel)   # a fresh shared_info page
        self.shared = self.hypervisor.shared
        self.time_info = self.shared.vcpu_info[0].time
        self._addresses = {
            self._address_of(self.time_info, "version"): "time",
            self._address_of(self.shared, "wc_version"): "wallclock"}
        self._schedules = {"time": _Schedule(), "wallclock": _Schedule()}
        self.log: list[ReadEvent] = []
        self.tsc = 0
        mul, shift = time_scale(tsc_hz)
        self.set_time_info(system_time, 0, mul, shift)
        self.set_wallclock(*wallclock)

    def _address_of(self, struct: Any, name: str) -> int:
        return int(self.ffi.cast("uintptr_t",
                                 self.ffi.addressof(struct, name)))

    def _activate(self) -> None:
        """Make this clock's page the kernel's shared_info and hook."""
        _install_hook(self.kernel)
        _CURRENT[self.kernel.module.__name__] = weakref.ref(self)
        self.kernel.set_shared_info(self.shared)

    def _on_version_read(self, address: int) -> None:
        which = self._addresses.get(address)
        if which is None:
            return
        loaded = (self.time_info.version if which == "time"
                  else self.shared.wc_version)
        steps = self._schedules[which].on_read()
        self.log.append(ReadEvent(which, loaded, steps))

    # -- the TSC -------------------------------------------------------------
    @property
    def tsc(self) -> int:
        return int(self.lib.host_tsc)

    @tsc.setter
    def tsc(self, value: int) -> None:
        if not 0 <= value <= MASK64:
            raise ValueError("the TSC is a 64-bit counter")
        self.lib.host_tsc = value

    def advance_tsc(self, ticks: int) -> None:
        self.tsc = self.tsc + ticks

    def advance_ns(self, ns: int) -> None:
        """Move the TSC until the record says ns more have passed."""
        self.tsc = max(self.tsc, self.record.tsc_for(self.now() + ns))

    def now(self) -> int:
        """System time now by the reference arithmetic (Xen's NOW())."""
        return self.record.at(self.tsc)

    # -- Xen writing the records ---------------------------------------------
    @property
    def record(self) -> TimeRecord:
        t = self.time_info
        return TimeRecord(int(t.system_time), int(t.tsc_timestamp),
                          int(t.tsc_to_system_mul), int(t.tsc_shift))

    @property
    def version(self) -> int:
        return int(self.time_info.version)

    def _time_update(self, record: TimeRecord) -> _Update:
        t = self.time_info

        def bump() -> None:
            t.version = (t.version + 1) & 0xFFFFFFFF
        values = (record.tsc_timestamp, record.system_time, record.mul,
                  record.shift)
        steps = [("version odd", bump)]
        steps += [(name, lambda n=name, v=v: setattr(t, n, v))
                  for name, v in zip(TIME_FIELDS, values)]
        return _Update(steps + [("version even", bump)])

    def _wallclock_update(self, sec: int, nsec: int) -> _Update:
        s = self.shared

        def bump() -> None:
            s.wc_version = (s.wc_version + 1) & 0xFFFFFFFF
        return _Update([
            ("version odd", bump),
            ("wc_sec", lambda: setattr(s, "wc_sec", sec & 0xFFFFFFFF)),
            ("wc_nsec", lambda: setattr(s, "wc_nsec", nsec)),
            ("wc_sec_hi", lambda: setattr(s, "wc_sec_hi", sec >> 32)),
            ("version even", bump)])

    def set_time_info(self, system_time: int, tsc_timestamp: int, mul: int,
                      shift: int) -> None:
        """Publish a whole record at once (version goes up by 2)."""
        record = TimeRecord(system_time, tsc_timestamp, mul, shift)
        self._time_update(record).run(6)

    def restamp(self) -> None:
        """What Xen does when it schedules the vCPU: a fresh record at the
        current TSC, same scale."""
        r = self.record
        self.set_time_info(self.now(), self.tsc, r.mul, r.shift)

    def set_wallclock(self, sec: int, nsec: int = 0) -> None:
        """The wall-clock time at system time 0."""
        if not 0 <= nsec < NSEC_PER_SEC or not 0 <= sec < 1 << 64:
            raise ValueError("sec must be 0..2^64-1 and nsec 0..10^9-1")
        self._wallclock_update(sec, nsec).run(5)

    def interleave(self, steps_per_read: Sequence[int],
                   records: Sequence[TimeRecord] = (),
                   wallclocks: Sequence[tuple[int, int]] = ()) -> None:
        """Run Xen's updates while the kernel reads: after the kernel's
        k-th load of a version counter, steps_per_read[k] more steps of the
        queued updates run (time records and wall clocks have separate
        queues, each fed by steps_per_read)."""
        for name, updates in (
                ("time", [self._time_update(r) for r in records]),
                ("wallclock", [self._wallclock_update(*w)
                               for w in wallclocks])):
            schedule = self._schedules[name]
            schedule.pending.extend(updates)
            schedule.steps_per_read.extend(steps_per_read)

    def hold_odd(self, reads: int,
                 record: Optional[TimeRecord] = None) -> None:
        """Start an update now (version odd) and finish it only after the
        kernel has loaded the version `reads` times (at least 1)."""
        if reads < 1:
            raise ValueError("reads must be at least 1")
        update = self._time_update(record or self.record)
        update.run(1)
        schedule = self._schedules["time"]
        schedule.current = update
        schedule.steps_per_read.extend([0] * (reads - 1) + [5])

    def tear_next_read(self, record: TimeRecord) -> None:
        """Right after the kernel's next version load, start writing
        `record` (version odd, tsc_timestamp, system_time), and finish
        after the load that follows: the kernel's copy in between is torn."""
        self.interleave([3, 3], [record])

    # -- the kernel reading them ---------------------------------------------
    def scale_delta(self, delta: int, mul: int, shift: int) -> int:
        return int(self.kernel.scale_delta(delta, mul, shift))

    def read(self) -> Snapshot:
        """read_time_info() on vCPU 0's record."""
        self._activate()
        snap = self.ffi.new("struct time_snapshot *")
        self.kernel.read_time_info(self.ffi.addressof(self.time_info), snap)
        record = TimeRecord(snap.system_time, snap.tsc_timestamp,
                            snap.tsc_to_system_mul, snap.tsc_shift)
        now = int(self.kernel.snapshot_system_time(snap))
        return Snapshot(snap.version, record, snap.tsc, snap.retries, now)

    def monotonic_clock(self) -> int:
        self._activate()
        return int(self.kernel.monotonic_clock())

    def wallclock(self) -> WallClock:
        self._activate()
        out = self.ffi.new("struct wallclock *")
        self.kernel.wallclock_now(out)
        return WallClock(out.sec, out.nsec)

    def wallclock_base(self) -> tuple[WallClock, int]:
        """read_wallclock_base(): the base and the number of retries."""
        self._activate()
        out = self.ffi.new("struct wallclock *")
        retries = self.kernel.read_wallclock_base(self.shared, out)
        return WallClock(out.sec, out.nsec), int(retries)

    def date(self, sec: int) -> Optional[tuple[int, ...]]:
        """date_from_unix(): (year, month, day, hour, min, sec) or None."""
        d = self.ffi.new("struct date *")
        if self.kernel.date_from_unix(sec, d) != 0:
            return None
        return (d.year, d.month, d.day, d.hour, d.min, d.sec)

    def tsc_khz(self) -> int:
        r = self.record
        return int(self.kernel.tsc_khz(r.mul, r.shift))

    def stats(self) -> dict[str, int]:
        s = self.lib.time_stats
        return {"reads": s.reads, "retries": s.retries,
                "wc_reads": s.wc_reads, "wc_retries": s.wc_retries}

    def snapshot(self) -> dict[str, Any]:
        """Plain data: the record as Xen wrote it, and the kernel's view."""
        read = self.read()
        return {"version": self.version, "record": self.record,
                "tsc": self.tsc, "kernel_time": read.system_time_now,
                "reference_time": self.record.at(read.tsc),
                "wallclock": self.wallclock(), "stats": self.stats()}


@dataclass
class ClockTrace:
    """The kernel's clock sampled as the TSC runs, and Xen's re-stamps."""

    tsc: list[int]
    kernel_ns: list[int]
    stamps: list[tuple[int, int]]  # (tsc_timestamp, system_time) per record
    muls: list[int]                # tsc_to_system_mul of each record
    shift: int                     # tsc_shift (Xen keeps it here)


def trace_clock(clock: Clock, step_ticks: int, samples: int,
                restamp_every: int,
                drift_ppm: Sequence[int] = (0,)) -> ClockTrace:
    """Advance the TSC by step_ticks `samples` times, reading
    monotonic_clock() each time. Every `restamp_every` samples Xen writes a
    fresh record, with mul changed by the next of `drift_ppm` (parts per
    million), as Xen's calibration does."""
    trace = ClockTrace([], [], [], [], clock.record.shift)

    def note_record() -> None:
        r = clock.record
        trace.stamps.append((r.tsc_timestamp, r.system_time))
        trace.muls.append(r.mul)
    note_record()
    for i in range(1, samples + 1):
        clock.advance_tsc(step_ticks)
        trace.tsc.append(clock.tsc)
        trace.kernel_ns.append(clock.monotonic_clock())
        if i % restamp_every == 0 and i < samples:
            ppm = drift_ppm[(i // restamp_every) % len(drift_ppm)]
            r = clock.record
            mul = r.mul + r.mul * ppm // 1_000_000
            clock.set_time_info(clock.now(), clock.tsc, mul, r.shift)
            note_record()
    return trace
