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
    """A tool the kit needs (QEMU, Xen, headers, compiler) is missing or
    broken, or the cache cannot be written; the message names the fix."""


class KernelFault(MiniosLabError):
    """Host-built kernel code faulted: SIGSEGV, SIGBUS, SIGFPE or SIGILL.

    The process goes on; the kernel instance that faulted does not (its
    memory may be half updated): further calls on it raise KernelUnusable.

    ``signal`` (e.g. "SIGSEGV"), ``address`` (the address touched, None for
    SIGFPE/SIGILL), ``access`` ("read", "write" or None), ``reason`` (e.g.
    "NULL pointer dereference", "stack overflow"), ``pc`` (the faulting
    instruction), ``function`` and ``offset`` (the kernel function, as in
    ``alloc_pages+0x1c``), ``file`` and ``line`` (from the module's debug
    information, ``kernel/...``), ``call`` (the Python call that entered
    the kernel, e.g. ``alloc_pages(0)``).
    """

    def __init__(self, signal: str, address: int | None, access: str | None,
                 reason: str, pc: int, function: str | None, offset: int,
                 file: str | None, line: int, call: str):
        self.signal, self.address, self.access = signal, address, access
        self.reason, self.pc = reason, pc
        self.function, self.offset = function, offset
        self.file, self.line, self.call = file, line, call
        super().__init__(self._text())

    @property
    def where(self) -> str:
        """``function+0xoff (kernel/file.c:line)``, as far as known."""
        name = f"{self.function}+{self.offset:#x}" if self.function \
            else f"pc {self.pc:#x}"
        return f"{name} ({self.file}:{self.line})" if self.file else name

    def _text(self) -> str:
        what = self.reason
        if self.address is not None:
            verb = f"{self.access} of" if self.access else "access to"
            what = f"{verb} address {self.address:#x}: {self.reason}"
        return (f"{self.signal} in kernel code at {self.where}: {what}; "
                f"entered from Python as {self.call}. This kernel instance "
                f"is now unusable: create a fresh one")


class KernelInterrupt(KeyboardInterrupt):
    """Kernel code was interrupted (Jupyter's Interrupt, Ctrl-C).

    A KeyboardInterrupt, so it stops a cell or a script as usual; it also
    says where the kernel was (``function``, ``file``, ``line``, ``call``).
    The instance that was interrupted is unusable afterwards.
    """

    def __init__(self, where: str, call: str):
        super().__init__(f"kernel code interrupted in {where}, entered from "
                         f"Python as {call}. This kernel instance is now "
                         f"unusable: create a fresh one")
        self.where, self.call = where, call


class KernelUnusable(MiniosLabError):
    """A call on a kernel instance that faulted or was interrupted before.

    ``cause`` is that earlier KernelFault or KernelInterrupt.
    """

    def __init__(self, message: str, cause: BaseException):
        super().__init__(message)
        self.cause = cause


class CompileWarning(UserWarning):
    """gcc warned about kernel code (shown at ``kernel/file.c:line``).

    ``file``, ``line``, ``flag`` (e.g. ``-Wsign-compare``) and ``text``
    (gcc's full diagnostic).
    """

    def __init__(self, text: str, file: str, line: int, flag: str = ""):
        super().__init__(text)
        self.text, self.file, self.line, self.flag = text, file, line, flag


class CacheWarning(UserWarning):
    """A built module in the cache was damaged and is being rebuilt."""


def checked_int(value: object, what: str, low: int, high: int,
                unit: str = "") -> int:
    """`value` if it is an int (not a bool) in low..high; else TypeError or
    ValueError naming `what`, before any C sees it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not "
                        f"{type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be {low} .. {high}{unit}, not {value}")
    return value
