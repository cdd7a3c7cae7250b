"""The cost of an alloc_pages()+free_pages() pair, from 2^10 to 2^20 pages.

The kernel's page allocator is built for the host (minios_lab.build.cbuild) and
the C loop mm_bench_alloc_free() (kernel/mm/selftest.c) is timed from
Python around a single call, so the Python overhead is paid once per
measurement, not once per pair. Each pool is first left with a single free
chunk, of its largest order: every alloc_pages(0) then splits that chunk
log2(pages) - 1 times and every free_pages() merges it back as many times,
the worst case of a buddy allocator. The number printed is the best of
several repeats, in nanoseconds per pair.

    python scripts/bench_page_alloc.py [--iterations N] [--repeats R]
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minios_lab.mm import bench_alloc_free  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000,
                        help="alloc+free pairs per measurement")
    parser.add_argument("--repeats", type=int, default=7,
                        help="measurements per pool size; the best is kept")
    parser.add_argument("--order", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"page allocator, worst case (one free chunk), order {args.order}; "
          f"{cpu_name()}")
    print(f"{'pages':>9} {'memory':>9} {'top order':>9} {'splits':>7} "
          f"{'ns/pair':>8}")
    for p in bench_alloc_free(order=args.order, iterations=args.iterations,
                              repeats=args.repeats):
        memory = p.nr_pages * 4096
        size = (f"{memory >> 30} GiB" if memory >= 1 << 30
                else f"{memory >> 20} MiB")
        print(f"{p.nr_pages:>9} {size:>9} {p.top_order:>9} "
              f"{p.splits_per_pair:>7.0f} {p.ns_per_pair:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
