"""minios-lab: the Mini-OS course kit.

Where things are (see README "What is where"): build/ compiles kernel code
for the host, xen/ is Python playing Xen, the top-level chapter modules
(start_of_day, libc, mm, pagetable, traps, events, time, timer) are the
Pythonic faces of the kernel, viz/ draws them, guest/ builds and boots the
real guest, classroom/ hands out and grades, notebook/ serves the notebooks.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
KERNEL_DIR = REPO_DIR / "kernel"
