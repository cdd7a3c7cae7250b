"""The guest's "physical memory" for the host build: Python plays the machine.

:class:`PhysicalMemory` reserves a page-aligned stretch of host memory that
the kernel's allocators (kernel/mm/) then manage. It is mapped at a fixed,
aligned host address when that address is free (it nearly always is), so a
notebook run twice prints the same addresses and every pool is aligned to
its own size: the buddy alignment of the pfns is that of the addresses.
"""
from __future__ import annotations

import ctypes
import errno
import weakref
from typing import Any

import numpy as np

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

_PROT_READ, _PROT_WRITE = 0x1, 0x2
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_NORESERVE, _MAP_FIXED_NOREPLACE = 0x4000, 0x100000
_MAP_FAILED = ctypes.c_void_p(-1).value

# Pools live at 16 TiB + slot * 64 GiB: far from the host's own mappings,
# and aligned to any pool of up to 2^24 pages.
_SLOT_BASE = 1 << 44
_SLOT_SIZE = 1 << 36
_NR_SLOTS = 1024


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not "
                        f"{type(value).__name__}")
    return int(value)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


_LIBC = _libc()
_slots_in_use: set[int] = set()


def _mmap(address: int, size: int, flags: int) -> int | None:
    flags |= _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE
    got = _LIBC.mmap(address, size, _PROT_READ | _PROT_WRITE, flags, -1, 0)
    if got not in (None, _MAP_FAILED):
        return got
    if ctypes.get_errno() == errno.EEXIST:
        return None
    raise MemoryError(f"cannot map {size} bytes of guest memory: "
                      f"{errno.errorcode.get(ctypes.get_errno(), '?')}")


def _map_at(address: int, size: int) -> bool:
    """Map `size` fresh zero bytes exactly at `address`, if it is free."""
    got = _mmap(address, size, _MAP_FIXED_NOREPLACE)
    if got is not None and got != address:  # an old kernel took it as a hint
        _LIBC.munmap(got, size)
        return False
    return got == address


def _map_aligned_anywhere(size: int) -> int:
    """Map `size` bytes wherever the host likes, aligned to _SLOT_SIZE."""
    got = _mmap(0, size + _SLOT_SIZE, 0)
    start = -(-got // _SLOT_SIZE) * _SLOT_SIZE
    if start > got:
        _LIBC.munmap(got, start - got)
    _LIBC.munmap(start + size, got + size + _SLOT_SIZE - (start + size))
    return start


def _release(slot: int, address: int, size: int) -> None:
    _LIBC.munmap(address, size)
    _slots_in_use.discard(slot)


class OutsideMemory(IndexError, ValueError):
    """A page number outside the guest's memory."""


class PhysicalMemory:
    """`nr_pages` zeroed pages of host memory, aligned to 64 GiB.

    Pages are only backed when first touched, so a 4 GiB pool costs the
    host just the pages the kernel writes.
    """

    def __init__(self, nr_pages: int):
        nr_pages = _integer(nr_pages, "nr_pages")
        if not 0 < nr_pages * PAGE_SIZE <= _SLOT_SIZE:
            limit = _SLOT_SIZE // PAGE_SIZE
            raise ValueError(f"nr_pages must be 1 .. {limit}")
        self.nr_pages = nr_pages
        self.size = nr_pages * PAGE_SIZE
        slot = next((n for n in range(_NR_SLOTS) if n not in _slots_in_use
                     and _map_at(_SLOT_BASE + n * _SLOT_SIZE, self.size)),
                    None)
        if slot is None:    # every slot taken: any aligned place will do
            slot, address = -1, _map_aligned_anywhere(self.size)
        else:
            address = _SLOT_BASE + slot * _SLOT_SIZE
        _slots_in_use.add(slot)
        self.base = address
        self._finalizer = weakref.finalize(self, _release, slot, address,
                                           self.size)

    def address(self, pfn: int) -> int:
        return self.base + pfn * PAGE_SIZE

    def pfn(self, address: int) -> int:
        return (address - self.base) >> PAGE_SHIFT

    def view(self, pfn: int, nbytes: int = PAGE_SIZE) -> memoryview:
        """The bytes at page `pfn`, readable and writable from Python."""
        pfn, nbytes = _integer(pfn, "pfn"), _integer(nbytes, "nbytes")
        if pfn < 0 or nbytes < 0 or pfn * PAGE_SIZE + nbytes > self.size:
            raise OutsideMemory(f"page {pfn} (+{nbytes} bytes) is outside "
                                f"the guest's {self.nr_pages} pages")
        return memoryview((ctypes.c_char * nbytes).from_address(
            self.address(pfn))).cast("B")


