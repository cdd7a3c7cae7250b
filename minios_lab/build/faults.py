"""What a fault in host-built kernel code was, and where, in kernel terms.

The guard runtime (cdefs/guard.c) records the signal, the address touched,
the faulting instruction and the page-fault error code. This module turns
that record into a :class:`~minios_lab.errors.KernelFault`: which kernel
function (the built module's symbol table, read with pyelftools), which
``kernel/file.c:line`` (its DWARF line table, through binutils'
``addr2line``), and a reason in a learner's words.
"""
from __future__ import annotations

import ctypes
import signal as _signal
import subprocess
from bisect import bisect_right
from functools import lru_cache
from typing import Any

from elftools.elf.elffile import ELFFile

from minios_lab.errors import KernelFault

# enum host_outcome in cdefs/guard.h
RETURNED, UNWOUND, FAULTED, INTERRUPTED = 0, 1, 2, 3

_SI_KERNEL = 0x80
_SEGV_MAPERR, _SEGV_ACCERR = 1, 2
_BUS_ADRALN, _BUS_ADRERR = 1, 2
_FPE_INTDIV, _FPE_INTOVF = 1, 2
_PF_WRITE, _PF_INSTR = 0x2, 0x10
_NULL_LIMIT = 0x10000        # below this, an address is a NULL pointer's
_STACK_SLACK = 0x10000       # this close to the stack pointer: overflow
_EXPORT_PREFIX = "minios_"   # cglue.EXPORT_PREFIX


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p),
                ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p)]


_libc = ctypes.CDLL(None)
_libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]


def _module_of(pc: int) -> tuple[str, int] | None:
    """(path of the shared object holding pc, its load address)."""
    info = _DlInfo()
    if pc == 0 or not _libc.dladdr(pc, ctypes.byref(info)) or \
            not info.dli_fname:
        return None
    return info.dli_fname.decode(), info.dli_fbase or 0


@lru_cache(maxsize=32)
def _functions(path: str) -> tuple[list[int], list[tuple[int, str]]]:
    """Sorted start addresses of the functions in path, and (size, name)."""
    entries = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for section in ("symtab", "dynsym"):
            table = elf.get_section_by_name("." + section)
            if table is None:
                continue
            entries += [(s["st_value"], s["st_size"], s.name)
                        for s in table.iter_symbols()
                        if s["st_info"]["type"] == "STT_FUNC"
                        and s["st_value"]]
            if entries:
                break
    entries.sort()
    return [e[0] for e in entries], [(e[1], e[2]) for e in entries]


def _symbol(path: str, offset: int) -> tuple[str | None, int]:
    starts, rest = _functions(path)
    i = bisect_right(starts, offset) - 1
    if i < 0:
        return None, 0
    size, name = rest[i]
    if size and offset >= starts[i] + size:
        return None, 0
    name = name.split(".")[0]           # strlen.cold, strlen.localalias
    if name.startswith(_EXPORT_PREFIX):    # strlen, exported as minios_strlen
        name = name[len(_EXPORT_PREFIX):]
    return name, offset - starts[i]


def _source_line(path: str, offset: int) -> tuple[str | None, int]:
    try:
        out = subprocess.run(["addr2line", "-e", path, f"{offset:#x}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, 0
    text = out.stdout.strip().split(" (discriminator")[0]
    file, _, line = text.rpartition(":")
    if not file or file.startswith("??") or not line.isdigit():
        return None, 0
    if "kernel/" in file:
        file = file[file.index("kernel/"):]
    return file, int(line)


def locate(pc: int) -> tuple[str | None, int, str | None, int]:
    """(function, offset in it, file, line) of a code address."""
    found = _module_of(pc)
    if found is None:
        return None, 0, None, 0
    path, base = found
    offset = pc - base
    function, within = _symbol(path, offset)
    file, line = _source_line(path, offset)
    return function, within, file, line


def _reason(fault: Any) -> tuple[str, int | None, str | None]:
    """(reason, address or None, "read"/"write"/"execute" or None)."""
    signo, code, address = fault.signo, fault.code, fault.address
    if signo == _signal.SIGFPE:
        return ("integer division by zero" if code == _FPE_INTDIV else
                "integer overflow in a division" if code == _FPE_INTOVF
                else "arithmetic fault"), None, None
    if signo == _signal.SIGILL:
        return ("illegal instruction (a __builtin_trap(), or a jump into "
                "data)"), None, None
    if signo == _signal.SIGBUS:
        return ("misaligned access" if code == _BUS_ADRALN else
                "access beyond the end of a mapped file"
                if code == _BUS_ADRERR else "bus error"), address, None
    if code == _SI_KERNEL:
        return ("general protection fault: a wild pointer (for instance a "
                "non-canonical address)"), None, None
    access = "execute" if fault.error & _PF_INSTR else \
        "write" if fault.error & _PF_WRITE else "read"
    if address < _NULL_LIMIT:
        reason = "NULL pointer dereference"
    elif abs(address - fault.sp) < _STACK_SLACK:
        reason = "stack overflow (endless or too deep recursion?)"
    elif code == _SEGV_ACCERR:
        reason = "the memory is mapped but not for this access"
    else:
        reason = "nothing is mapped there"
    return reason, address, access


def kernel_fault(fault: Any, call: str) -> KernelFault:
    """The KernelFault for a guard's struct host_fault record."""
    reason, address, access = _reason(fault)
    function, offset, file, line = locate(fault.pc)
    name = _signal.Signals(fault.signo).name
    return KernelFault(name, address, access, reason, fault.pc, function,
                       offset, file, line, call)


def where(pc: int) -> str:
    """``function+0xoff (kernel/file.c:line)`` of a code address."""
    function, offset, file, line = locate(pc)
    text = f"{function}+{offset:#x}" if function else f"pc {pc:#x}"
    return f"{text} ({file}:{line})" if file else text
