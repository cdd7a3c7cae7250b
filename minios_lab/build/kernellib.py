"""KernelLib: the thin 1:1 face of a host-built kernel unit.

``kernel.f(x)`` calls the C function ``f`` (or ``minios_f`` for names that
clash with the C library). If the kernel panics, the call raises
:class:`KernelPanic`; if it shuts the domain down, :class:`DomainShutdown`;
if the Python hypervisor (minios_lab.xen) itself raised, that exception. A
fault or Ctrl-C in the C code is caught by the guard (build/faults.py,
build/cdefs/guard.c). The process and the Jupyter kernel go on.
"""
from __future__ import annotations

import errno
import os
import sys
import threading
from types import ModuleType
from typing import Any, Callable

from minios_lab.build import cglue, faults
from minios_lab.errors import (DomainShutdown, KernelFault, KernelInterrupt,
                               KernelPanic, KernelUnusable)
from minios_lab.xen.hypervisor import HOST_UNWIND, Hypervisor


class _Registry:
    """Which Hypervisor serves each loaded extension module right now."""

    active: dict[str, Hypervisor] = {}
    errors: dict[str, BaseException] = {}
    hooked: set[str] = set()


def _hook(module: ModuleType, key: str) -> None:
    if key in _Registry.hooked:
        return

    def on_error(exc_type, exc, tb):  # a bug in the Python "Xen"
        _Registry.errors[key] = exc
        return HOST_UNWIND

    @module.ffi.def_extern(name="host_hypercall", onerror=on_error)
    def host_hypercall(nr, a1, a2, a3, a4, a5):
        hv = _Registry.active.get(key)
        if hv is None:
            return -errno.ENOSYS
        result = hv.hypercall(nr, a1, a2, a3, a4, a5)
        return result

    _Registry.hooked.add(key)


def _describe(name: str, args: tuple) -> str:
    """How Python called the kernel, e.g. ``alloc_pages(0)``."""
    def short(arg: Any) -> str:
        text = repr(arg)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"{name}({', '.join(map(short, args))})"


def _python_caller() -> str:
    """The innermost Python frame outside this module: who entered."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return ""
    path = frame.f_code.co_filename
    if "ipykernel_" in path or path.startswith("<ipython-input"):
        return f" at line {frame.f_lineno} of the cell"   # no temp names
    name = os.path.basename(path)
    return f" at {name}:{frame.f_lineno} in {frame.f_code.co_name}()"


# One lock per loaded module: the kernel keeps one current pool, heap,
# shared page... per module, so calls into it (and the "select, then act"
# sequences of the faces) from several threads must take turns.
_LOCKS: dict[str, threading.RLock] = {}


class KernelLib:
    """A host-built kernel unit: C functions callable from Python, safely.

    A panic raises KernelPanic and the instance goes on. A fault
    (KernelFault) or an interrupt (KernelInterrupt) leaves the kernel's
    memory in an unknown state: the instance is then marked unusable, and
    every later call raises KernelUnusable. Other instances, of the same
    unit or not, keep working.

    ``lock`` is the module's lock: hold it across a sequence of calls that
    must not be interleaved with another thread's (faces do).
    """

    def __init__(self, module: ModuleType, hypervisor: Hypervisor | None = None):
        self.module = module
        self.ffi = module.ffi
        self.lib = module.lib
        self._key = module.__name__
        _hook(module, self._key)
        self.lock = _LOCKS.setdefault(self._key, threading.RLock())
        self.broken: BaseException | None = None
        self._outcome = self.ffi.new("struct host_fault *")
        self._take_outcome = module.lib.host_take_outcome
        self.hypervisor = hypervisor or Hypervisor()
        self.hypervisor.attach(module)

    def __getattr__(self, name: str) -> Any:
        lib = self.__dict__["lib"]
        names = self.__dict__.setdefault("_names", set(dir(lib)))
        for candidate in (name, "minios_" + name):
            if "host_vguard_" + candidate in names:
                return self._variadic(getattr(lib, candidate),
                                      getattr(lib, "host_vguard_" + candidate),
                                      candidate)
            if candidate in names:
                value = getattr(lib, candidate)
                return self._guarded(value) if callable(value) else value
        raise AttributeError(f"kernel unit has no function or global {name!r}")

    def _guarded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        invoke = self._invoke

        def call(*args: Any) -> Any:
            __tracebackhide__ = True  # IPython: show the cell, not this
            return invoke(function, args)
        call.__name__ = getattr(function, "__name__", "kernel_function")
        return call

    def _variadic(self, function: Any, guarded: Any,
                  name: str) -> Callable[..., Any]:
        """A variadic kernel function, called through its guard: the fixed
        arguments as they are, the variadic ones (cdata, as cffi requires)
        as 64-bit words."""
        fixed = len(self.ffi.typeof(function).args)

        def call(*args: Any) -> Any:
            __tracebackhide__ = True  # IPython: show the cell, not this
            words = [_word(self.ffi, a, fixed + i + 1)
                     for i, a in enumerate(args[fixed:])]
            if len(words) > cglue.MAX_VARIADIC_WORDS:
                raise TypeError(f"{_name(name)}: at most "
                                f"{cglue.MAX_VARIADIC_WORDS} variadic "
                                f"arguments, not {len(words)}")
            array = self.ffi.new("unsigned long[]", words or [0])
            return self._invoke(guarded, (*args[:fixed], len(words), array),
                                (name, args))
        call.__name__ = _name(name)
        return call

    def _check_usable(self) -> None:
        __tracebackhide__ = True  # IPython: show the cell, not this
        if self.broken is not None:
            what = getattr(self.broken, "where", "")
            raise KernelUnusable(
                f"this kernel instance stopped at an earlier "
                f"{type(self.broken).__name__} ({what}) and its memory "
                f"cannot be trusted: create a fresh one (a new object of "
                f"the same class, e.g. PageAllocator(...))", self.broken)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call a kernel function with this unit's hypervisor serving it."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self._invoke(function, args)

    def _invoke(self, function: Callable[..., Any], args: tuple,
                shown: tuple[Callable[..., Any], tuple] | None = None) -> Any:
        """call(); `shown` is the (function, args) to name in errors."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        if self.broken is not None:
            self._check_usable()
        key, active = self._key, _Registry.active
        with self.lock:
            previous = active.get(key)
            active[key] = self.hypervisor
            try:
                result = function(*args)
            except OverflowError as err:  # cffi: the value does not fit
                name, values = shown or (function, args)
                raise ValueError(f"{_describe(_name(name), values)}: "
                                 f"{err}") from None
            finally:
                active[key] = previous
                outcome = self._take_outcome(self._outcome)
                if outcome >= faults.FAULTED:   # even if Python raised
                    self._stopped(outcome, *(shown or (function, args)))
            if not outcome:
                return result
            error = _Registry.errors.pop(key, None)
        if outcome >= faults.FAULTED:
            raise self.broken
        if error is not None:
            if isinstance(error, (KernelFault, KeyboardInterrupt)):
                self.broken = error     # Ctrl-C in a hypercall, or deeper
            raise error
        self._raise_for_shutdown()

    def _stopped(self, outcome: int, function: Callable[..., Any],
                 args: tuple) -> None:
        """The call came back through a fault or an interrupt: this
        instance is unusable from now on (self.broken says why)."""
        call = _describe(_name(function), args) + _python_caller()
        if outcome == faults.FAULTED:
            self.broken = faults.kernel_fault(self._outcome, call)
        else:
            self.broken = KernelInterrupt(faults.where(self._outcome.pc),
                                          call)

    def _raise_for_shutdown(self) -> None:
        __tracebackhide__ = True  # IPython: show the cell, not this
        reason = self.hypervisor.shutdown_reason or "unknown"
        self.hypervisor.shutdown_reason = None
        if reason == "crash":
            info = self.lib.panic_info
            file = self.ffi.string(info.file).decode() if info.file else "?"
            raise KernelPanic(self.ffi.string(info.message).decode("latin-1"),
                              file, info.line, self.hypervisor.console_text)
        raise DomainShutdown(reason)


def _word(ffi: Any, arg: Any, position: int) -> int:
    """A variadic argument as the 64-bit word the C callee reads."""
    if not isinstance(arg, ffi.CData):
        raise TypeError(f"argument {position} passed in the variadic part "
                        f"needs to be a cdata object (got "
                        f"{type(arg).__name__})")
    kind = ffi.typeof(arg).kind
    if kind == "primitive" and ffi.typeof(arg).cname in ("float", "double",
                                                           "long double"):
        raise TypeError(f"argument {position}: the kernel's printf has no "
                        f"floating point")
    if kind in ("pointer", "array", "function"):
        return int(ffi.cast("uintptr_t", arg))
    return int(ffi.cast("unsigned long", arg))


def _name(function: Callable[..., Any] | str) -> str:
    name = function if isinstance(function, str) else \
        getattr(function, "__name__", "kernel_function")
    return name[len("minios_"):] if name.startswith("minios_") else name
