"""Measure boot wall time on Xen in QEMU (QEMU start to QEMU exit), as
BootResult.elapsed reports it. Prints measured numbers; asserts nothing.

    .venv/bin/python scripts/bench_boot.py [--runs 5] [--memory 64]
                                           [--domu-runs 3]

Configurations:
  floor      chapters=0: the guest prints its start of day and shuts down at
             once, so this is Xen's own boot plus QEMU's start and exit
  default    the guest as `make boot` runs it (every chapter, default ticks)
  ticks=N    the full guest with a fixed number of timer ticks (--ticks)
  domU       the full guest as an unprivileged domain: Xen, a Linux dom0
             from Debian's packages, `xl create -c kernel/domain_config`,
             the guest's run and shutdown, xl's account, the dom0's poweroff
             (boot(domu=True)); the dom0 is fetched and built before timing
The image is built once before timing (`make -C kernel`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from minios_lab.guest.boot import boot, build_image
from minios_lab.guest.dom0 import prepare as prepare_dom0


def measure(cmdline: str, runs: int, memory_mb: int,
            domu: bool = False) -> list[float]:
    times = []
    for _ in range(runs):
        result = boot(cmdline, memory_mb=memory_mb, build=False, timeout=120,
                      domu=domu)
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
    parser.add_argument("--domu-runs", type=int, default=3,
                        help="runs of the domU configuration (0: none)")
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
    if args.domu_runs > 0:
        start = time.perf_counter()
        prepare_dom0()
        print(f"dom0 kernel and initramfs ready: "
              f"{time.perf_counter() - start:.2f} s")
        t = measure("", args.domu_runs, args.memory, domu=True)
        print(f"{'domU (xl create -c)':<28} {statistics.median(t):7.2f} "
              f"{min(t):7.2f} {max(t):7.2f}  ({args.domu_runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
