"""The live console's reader (guest.live.qemu.Console): after the guest
stops, everything QEMU has written so far is in the console once
settle() returns, however late the reader thread runs."""
from __future__ import annotations

import os
import threading
import time

from minios_lab.guest.live.qemu import Console


def _reader(echo=None):
    read_end, write_end = os.pipe()
    console = Console(echo)
    stream = os.fdopen(read_end, "rb")
    threading.Thread(target=console.read_from, args=(stream,),
                     daemon=True).start()
    return console, write_end


def test_settle_waits_for_a_slow_reader():
    console, pipe = _reader(echo=lambda line: time.sleep(0.05))
    os.write(pipe, b"".join(b"mm: line %d\n" % i for i in range(6)))
    console.settle(timeout=5)
    assert console.snapshot()[1] == [f"mm: line {i}" for i in range(6)]
    os.close(pipe)


def test_settle_returns_at_once_when_all_is_read():
    console, pipe = _reader()
    os.write(pipe, b"(XEN) hello\n")
    console.settle(timeout=5)
    start = time.monotonic()
    console.settle(timeout=5)
    assert time.monotonic() - start < 0.5
    assert console.snapshot()[0] == ["(XEN) hello"]
    os.close(pipe)


def test_a_partial_last_line_is_kept_until_its_end_and_at_close():
    console, pipe = _reader()
    os.write(pipe, b"one\ntw")
    console.settle(timeout=5)
    assert console.snapshot()[1] == ["one"]
    os.write(pipe, b"o\r\nthr")
    console.settle(timeout=5)
    assert console.snapshot()[1] == ["one", "two"]
    os.close(pipe)
    assert console.closed.wait(5)
    assert console.snapshot()[1] == ["one", "two", "thr"]


def test_settle_after_close_returns():
    console, pipe = _reader()
    os.close(pipe)
    assert console.closed.wait(5)
    start = time.monotonic()
    console.settle(timeout=5)
    assert time.monotonic() - start < 0.5
