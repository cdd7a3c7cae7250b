"""Does Xen's periodic timer wake a blocked PV guest? Boot and see.

kernel/timer.c uses the one-shot timer (set_timer_op), because Xen 4.17
stops a vCPU's periodic timer when it switches away from the vCPU, and a
vCPU blocked in SCHEDOP_block is switched away. This script checks the
claim on real Xen in QEMU: it copies kernel/ to a temporary directory,
makes the timer use VCPUOP_set_periodic_timer (and not re-arm the one-shot)
with the same blocking idle loop, boots it, and prints what happened:
with the periodic timer the guest never wakes, and the boot times out.
With --spin the idle loop spins with events enabled instead of blocking:
the vCPU keeps running, and the periodic ticks do arrive.

    python scripts/periodic_timer_experiment.py [--spin] [--timeout 15]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from minios_lab.guest.boot import boot
from minios_lab.time import parse_time_section

KERNEL = Path(__file__).resolve().parent.parent / "kernel"

EDITS = [
    # Arm the periodic timer instead of stopping it...
    ("rc = HYPERVISOR_vcpu_op(VCPUOP_stop_periodic_timer, 0, NULL);",
     "struct vcpu_set_periodic_timer p = {.period_ns = period_ns};\n"
     "    rc = HYPERVISOR_vcpu_op(VCPUOP_set_periodic_timer, 0, &p);"),
    # ...and never arm the one-shot.
    ("rc = HYPERVISOR_set_timer_op(t->deadline);", "rc = 0;"),
    ("if (next != 0 && HYPERVISOR_set_timer_op(next) != 0)", "if (0)"),
]
SPIN = ("HYPERVISOR_sched_op(SCHEDOP_block, NULL);", "local_irq_enable();")


def patched_kernel(workdir: Path, spin: bool) -> Path:
    """A copy of kernel/ with the periodic timer, in workdir."""
    kernel = workdir / "kernel"
    shutil.copytree(KERNEL, kernel, ignore=shutil.ignore_patterns("build"))
    timer = kernel / "timer.c"
    text = timer.read_text()
    for old, new in EDITS + ([SPIN] if spin else []):
        if text.count(old) != 1:
            raise SystemExit(f"kernel/timer.c changed: cannot find {old!r}")
        text = text.replace(old, new)
    timer.write_text(text)
    return kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spin", action="store_true",
                        help="spin instead of blocking between ticks")
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernel = patched_kernel(Path(tmp), args.spin)
        result = boot("tick_us=1000 ticks=100", timeout=args.timeout,
                      kernel_dir=kernel)
    report = parse_time_section(result.section("time"))
    idle = "spins" if args.spin else "blocks"
    print(f"periodic timer, idle loop {idle}: {result}")
    print(f"ticks counted: {len(report.intervals_us)} of 100")
    if report.interval_us:
        print(f"intervals (us): {report.interval_us}")


if __name__ == "__main__":
    main()
