"""Measure host-build (cbuild) times: cold compile, and warm load in a new
process, for each registered unit. Prints measured numbers; asserts nothing.

    .venv/bin/python scripts/bench_cbuild.py [--runs 3]

Cold: an empty build cache (a temporary MINIOS_LAB_CACHE; the Xen headers
are taken from the normal cache through MINIOS_XEN_INCLUDE), so every unit
is compiled. Warm: the same cache, a fresh Python process, nothing changed.
Each time is the wall time of `load(unit)` inside the child process.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t = time.perf_counter()
from minios_lab.build.units import load
load(sys.argv[1])
print(json.dumps(time.perf_counter() - t))
"""


def timed_load(unit: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, unit], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from minios_lab.build.toolchain import xen_include_dir
    from minios_lab.build.units import UNITS

    print(f"{'unit':<14} {'cold (s)':>9} {'warm median (s)':>16}")
    for unit in sorted(UNITS):
        colds, warms = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, MINIOS_LAB_CACHE=cache,
                           MINIOS_XEN_INCLUDE=str(xen_include_dir()))
                colds.append(timed_load(unit, env))
                warms.append(timed_load(unit, env))
        print(f"{unit:<14} {statistics.median(colds):9.3f} "
              f"{statistics.median(warms):16.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
