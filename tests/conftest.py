"""Shared fixtures: a private copy of kernel/ that a test may edit."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KERNEL = REPO / "kernel"


@pytest.fixture
def kernel_copy(tmp_path: Path) -> Path:
    """A copy of kernel/ (sources and headers, no build output).

    A unique marker comment makes its build hash differ from every other
    copy, so each test really compiles.
    """
    dst = tmp_path / "kernel"
    shutil.copytree(KERNEL, dst, ignore=shutil.ignore_patterns("build"))
    marker = dst / "host" / "marker.h"
    marker.write_text(f"/* test copy {uuid.uuid4()} */\n")
    return dst


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` (which must occur once) by `new`; return its line."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new))
    return line


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """The guest image, built once per session.

    QEMU, Xen and its headers must be present: `make test` installs them,
    so a missing tool is a failure here, never a skip.
    """
    from minios_lab.build import toolchain
    from minios_lab.guest.boot import build_image
    toolchain.qemu_binary(install=False)
    toolchain.xen_binary()
    toolchain.xen_include_dir()
    return build_image()


# The start of a child Python that boots and prints QEMU's pid as soon as
# QEMU is spawned (tests that kill or interrupt the child look for it).
PRINT_QEMU_PID = """
from minios_lab.guest import boot as b
from minios_lab.guest import qemu as qemu_proc
real_spawn = qemu_proc.spawn
def spawn(*args, **kwargs):
    proc = real_spawn(*args, **kwargs)
    print("qemu pid", proc.pid, flush=True)
    return proc
qemu_proc.spawn = spawn
"""
