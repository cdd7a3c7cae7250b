"""Measure boot wall time on Xen in QEMU (QEMU start to QEMU exit), as
BootResult.elapsed reports it. Prints measured numbers; asserts nothing.

    .venv/bin/python scripts/bench_boot.py [--runs 5] [--memory 64]

Configurations:
  floor      chapters=0: the guest prints its start of day and shuts down at
             once, so this is Xen's own boot plus QEMU's start and exit
  default    the guest as `make boot` runs it (every chapter, default ticks)
  ticks=N    the full guest with a fixed number of timer ticks (--ticks)
The image is built once before timing (`make -C kernel`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from minios_lab.guest.boot import boot, build_image


def measure(cmdline: str, runs: int, memory_mb: int) -> list[float]:
    times = []
    for _ in range(runs):
        result = boot(cmdline, memory_mb=memory_mb, build=False, timeout=120)
        if result.outcome != "shutdown":
            raise SystemExit(f"boot {cmdline!r} ended in {result.outcome}:\n"
                             f"{result.report()}")
        times.append(result.elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory", type=int, default=64)
    parser.add_argument("--ticks", type=int, default=3000)
    args = parser.parse_args()
    start = time.perf_counter()
    build_image()
    print(f"make -C kernel: {time.perf_counter() - start:.2f} s")
    configs = {"floor (chapters=0)": "chapters=0",
               "default (make boot)": "",
               f"ticks={args.ticks} tick_us=1000":
                   f"ticks={args.ticks} tick_us=1000"}
    print(f"{'configuration':<28} {'median':>7} {'min':>7} {'max':>7}  (s, "
          f"{args.runs} runs, {args.memory} MiB)")
    for name, cmdline in configs.items():
        t = measure(cmdline, args.runs, args.memory)
        print(f"{name:<28} {statistics.median(t):7.2f} {min(t):7.2f} "
              f"{max(t):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
