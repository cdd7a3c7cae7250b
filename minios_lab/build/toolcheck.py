"""Is each tool the build needs really there and really what it claims?

Small checks, each raising :class:`~minios_lab.errors.ToolchainError` whose
message names the cause and the one command or setting that fixes it:

* :func:`check_compiler` compiles a tiny C file with ``$CC`` (a name that
  exists but is no compiler, such as ``/bin/true``, fails here, not later
  with a puzzling error from cffi);
* :func:`python_include_dir` finds ``Python.h`` and ``pyconfig.h``, which
  cffi's host builds include;
* :func:`writable_dir` creates a folder and proves it writable, turning
  every ``OSError`` (a file in the way, no permission, a full disk) into a
  ``ToolchainError``;
* :func:`xen_image_problem` says why a file is not a Xen hypervisor QEMU can
  boot (an ELF with a multiboot header), or returns None.

:mod:`minios_lab.build.toolchain` (finding and fetching the tools) and
:mod:`minios_lab.build.cbuild` use them; ``minios-lab doctor`` reports them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import struct
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Iterator

from minios_lab.errors import ToolchainError

COMPILER_FIX = ("install gcc: sudo apt-get install -y gcc libc6-dev "
                "(or set CC to a C compiler)")
PYTHON_DEV_FIX = "sudo apt-get install -y python3-dev"
CACHE_FIX = "set MINIOS_LAB_CACHE to a writable folder"
_TINY_C = "int minios_lab_probe(int x) { return x + 1; }\n"
_good_compilers: set[str] = set()

MULTIBOOT1 = 0x1BADB002     # header within the first 8 KiB, 4-byte aligned
MULTIBOOT2 = 0xE85250D6     # header within the first 32 KiB, 8-byte aligned


def compiler() -> str:
    """The C compiler the kit uses: $CC, else gcc."""
    return os.environ.get("CC", "").strip() or "gcc"


def check_compiler(cc: str | None = None) -> str:
    """Prove that cc compiles C to an object file; return its full path."""
    cc = cc or compiler()
    path = shutil.which(cc.split()[0])
    if path is None:
        raise ToolchainError(f"C compiler not found: CC={cc}. Fix: "
                             f"{COMPILER_FIX}")
    if path in _good_compilers:
        return path
    with tempfile.TemporaryDirectory(prefix="minios-lab-cc-") as tmp:
        src, obj = Path(tmp) / "probe.c", Path(tmp) / "probe.o"
        src.write_text(_TINY_C)
        try:
            proc = subprocess.run([path, *cc.split()[1:], "-c", str(src),
                                   "-o", str(obj)], capture_output=True,
                                  text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ToolchainError(f"CC={cc} cannot be run ({err}). Fix: "
                                 f"{COMPILER_FIX}") from None
        ok = proc.returncode == 0 and obj.is_file() and \
            obj.read_bytes()[:4] == b"\x7fELF"
    if not ok:
        said = (proc.stderr or proc.stdout).strip()[-400:]
        raise ToolchainError(
            f"CC={cc} is not a working C compiler: it did not turn a "
            f"one-line C file into an object file"
            f"{': ' + said if said else ''}. Fix: {COMPILER_FIX}")
    _good_compilers.add(path)
    return path


def python_include_dir() -> Path:
    """The folder of Python.h for this Python; pyconfig.h must exist too."""
    paths = sysconfig.get_paths()
    include = Path(paths["include"])
    dirs = [include, Path(paths["platinclude"])]
    missing = [name for name in ("Python.h", "pyconfig.h")
               if not any((d / name).is_file() for d in dirs)]
    if missing:
        raise ToolchainError(
            f"the Python headers are missing ({', '.join(missing)} not in "
            f"{include}): host builds of kernel code need them. Fix: "
            f"{PYTHON_DEV_FIX}")
    return include


def _oserror_text(err: OSError, path: Path) -> str:
    if err.errno == errno.ENOSPC:
        return f"the disk holding {path} is full"
    if err.errno == errno.EDQUOT:
        return f"the disk quota for {path} is used up"
    return f"{path} is not a writable folder ({err.strerror or err})"


@contextlib.contextmanager
def cache_faults(path: Path, fix: str = CACHE_FIX) -> Iterator[None]:
    """Turn an OSError while writing under path into a ToolchainError."""
    try:
        yield
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        hint = "free some space, or " + fix if full else fix
        raise ToolchainError(f"{_oserror_text(err, path)}. Fix: "
                             f"{hint}") from err


def writable_dir(path: Path, fix: str = CACHE_FIX) -> Path:
    """Create path (and parents) and prove a file can be written in it."""
    with cache_faults(path, fix):
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-") as f:
            f.write(b"x")
            f.flush()
    return path


def _multiboot_header(head: bytes) -> bool:
    for magic, limit, align in ((MULTIBOOT1, 8192, 4),
                                (MULTIBOOT2, 32768, 8)):
        for off in range(0, min(limit, len(head) - 11), align):
            (value,) = struct.unpack_from("<I", head, off)
            if value != magic:
                continue
            if magic == MULTIBOOT1:
                flags, check = struct.unpack_from("<II", head, off + 4)
                if (value + flags + check) & 0xFFFFFFFF == 0:
                    return True
            else:
                arch, length, check = struct.unpack_from("<III", head,
                                                         off + 4)
                if (value + arch + length + check) & 0xFFFFFFFF == 0:
                    return True
    return False


def xen_image_problem(path: Path) -> str | None:
    """Why path is not a bootable Xen (ELF + multiboot header), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(32768)
    except OSError as err:
        return f"cannot read {path}: {err.strerror or err}"
    if head[:2] == b"\x1f\x8b":
        return f"{path} is gzip-compressed: gunzip it first"
    if head[:4] != b"\x7fELF":
        return f"{path} is not an ELF file, so not a Xen hypervisor"
    if not _multiboot_header(head):
        return (f"{path} is an ELF file without a multiboot header, so not "
                "a Xen hypervisor (the guest image minios.elf is not one)")
    return None
