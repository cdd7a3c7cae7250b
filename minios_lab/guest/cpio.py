"""Write newc cpio archives, the format of Linux's initramfs.

A newc ("070701") entry is a 110-byte header of ASCII hex fields (inode,
mode, uid, gid, nlink, mtime, file size, device numbers, name size,
checksum), the NUL-terminated name padded to 4 bytes, then the data padded
to 4 bytes; the archive ends with an entry named ``TRAILER!!!``. Linux
unpacks archives that follow one another (zeros between them are
skipped), which lets a boot append its own small archive to a cached one
(:mod:`minios_lab.guest.dom0`). No root is needed to write a device node
into an archive. Owners are root and times zero, so the same input always
gives the same bytes.
"""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path

CPIO_MAGIC = b"070701"
CPIO_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Write a newc ("070701") cpio archive, as Linux's initramfs reads.

    Entries are written in the order given; parents must come first.
    Owners are root, times zero: the same input gives the same bytes.
    """

    def __init__(self, out: io.BufferedIOBase):
        self._out = out
        self._ino = 0
        self._size = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)

    def _pad(self) -> None:
        self._write(b"\0" * (-self._size % 4))

    def entry(self, name: str, mode: int, data: bytes = b"",
              rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.strip("/") if name != CPIO_TRAILER else name
        encoded = name.encode() + b"\0"
        self._ino += 1
        fields = (self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0,
                  len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._write(CPIO_MAGIC + b"".join(b"%08x" % f for f in fields))
        self._write(encoded)
        self._pad()
        self._write(data)
        self._pad()

    def directory(self, name: str) -> None:
        self.entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self.entry(name, stat.S_IFREG | (0o755 if executable else 0o644),
                   data)

    def symlink(self, name: str, target: str) -> None:
        self.entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int) -> None:
        self.entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def close(self) -> None:
        """The trailer, then zeros to a 512-byte boundary (so that another
        archive may follow, as Linux allows)."""
        self.entry(CPIO_TRAILER, 0)
        self._write(b"\0" * (-self._size % 512))


def add_tree(writer: CpioWriter, tree: Path) -> None:
    """Archive every file, folder and symlink of tree (sorted: parents
    first)."""
    for path in sorted(tree.rglob("*")):
        name = path.relative_to(tree).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            writer.symlink(name, os.readlink(path))
        elif stat.S_ISDIR(mode):
            writer.directory(name)
        else:
            writer.file(name, path.read_bytes(), bool(mode & 0o111))
