"""Exceptions raised by minios-lab: what went wrong, in the learner's terms."""
from __future__ import annotations


class MiniosLabError(Exception):
    """Base class of every error raised by minios-lab."""


class CompileError(MiniosLabError):
    """The C compiler rejected kernel code.

    The message is the compiler's diagnostics, with paths shown as
    ``kernel/...:line``; ``locations`` lists the (file, line) pairs of errors.
    """

    def __init__(self, diagnostics: str, locations: list[tuple[str, int]]):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.locations = locations


class KernelPanic(MiniosLabError):
    """Kernel code called ``BUG()``/``panic()`` or failed an ``ASSERT()``.

    The kernel stopped; Python unwound out of it. ``file`` and ``line`` say
    where. The kernel's state after a panic is not trustworthy: build a fresh
    object before going on.
    """

    def __init__(self, message: str, file: str, line: int, console: str = ""):
        super().__init__(f"{message} (at {file}:{line})")
        self.message = message
        self.file = file
        self.line = line
        self.console = console


class DomainShutdown(MiniosLabError):
    """Kernel code asked Xen to shut the domain down (not a crash)."""

    def __init__(self, reason: str):
        super().__init__(f"the kernel shut the domain down: {reason}")
        self.reason = reason


class ToolchainError(MiniosLabError):
    """A tool the kit needs (QEMU, Xen, headers, compiler) is missing."""
