"""start_info parsing in the host build: good pages, bad pages, cmd_line."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minios_lab.errors import KernelPanic
from minios_lab.start_of_day import (DEFAULTS, StartInfoError, StartOfDay,
                                     parse_report)


@pytest.fixture(scope="module")
def sod() -> StartOfDay:
    return StartOfDay()


def test_fields_are_copied(sod):
    fields = dict(nr_pages=8192, shared_info=0x1234000, flags=2,
                  pt_base=0x40D000, nr_pt_frames=5, mfn_list=0x400000,
                  mod_start=0x600000, mod_len=12345, first_p2m_pfn=7,
                  nr_p2m_frames=3)
    info = sod.parse(sod.make_start_info("", **fields))
    assert info.nr_pages == 8192 and info.memory_mib == 32
    assert info.shared_info_ma == 0x1234000
    assert (info.pt_base, info.nr_pt_frames) == (0x40D000, 5)
    assert (info.mod_start, info.mod_len) == (0x600000, 12345)
    assert (info.first_p2m_pfn, info.nr_p2m_frames) == (7, 3)
    assert info.args == {}


@pytest.mark.parametrize("fields, message", [
    (dict(magic=b"xen-3.0-x86_32p"), "bad magic"),
    (dict(magic=b""), "bad magic"),
    (dict(magic=b"xen-3.0-x86_64-and-more"), "bad magic"),
    (dict(nr_pages=0), "absurd nr_pages"),
    (dict(nr_pages=1 << 40), "absurd nr_pages"),
    (dict(pt_base=0), "no initial page tables"),
    (dict(nr_pt_frames=0), "no initial page tables"),
])
def test_bad_start_info_is_refused(sod, fields, message):
    with pytest.raises(StartInfoError, match=message):
        sod.parse(sod.make_start_info("", **fields))


def test_unterminated_cmd_line_is_refused(sod):
    with pytest.raises(StartInfoError, match="not NUL-terminated"):
        sod.parse(sod.make_start_info(b"a" * 1024))
    # One byte shorter leaves room for the NUL: accepted.
    with pytest.raises(StartInfoError, match="too long key"):
        sod.parse(sod.make_start_info(b"a" * 1023))


def test_overlong_words_and_too_many_words(sod):
    with pytest.raises(StartInfoError, match="too long key"):
        sod.parse(sod.make_start_info("k" * 40 + "=1"))
    with pytest.raises(StartInfoError, match="too long value"):
        sod.parse(sod.make_start_info("k=" + "v" * 200))
    with pytest.raises(StartInfoError, match="too many words"):
        sod.parse(sod.make_start_info(" ".join(f"w{i}" for i in range(33))))
    with pytest.raises(StartInfoError, match="empty or too long key"):
        sod.parse(sod.make_start_info("=value"))


def test_cmd_line_longer_than_page_field_is_a_python_error(sod):
    with pytest.raises(ValueError, match="longer than 1024"):
        sod.make_start_info("x" * 1025)


def test_start_of_day_panics_on_bad_page_and_reports_good_one(sod):
    with pytest.raises(KernelPanic, match="absurd nr_pages"):
        sod.kernel.start_of_day(sod.make_start_info(nr_pages=0))
    text = sod.report(sod.make_start_info("ticks=3000 name=lab"))
    found = parse_report(text.splitlines())
    assert found["nr_pages"] == DEFAULTS["nr_pages"]
    assert found["pt_base"] == DEFAULTS["pt_base"]
    assert found["cmd_line"] == "ticks=3000 name=lab"
    assert found["args"] == {"ticks": "3000", "name": "lab"}


def test_boot_arg_ulong(sod):
    kernel, ffi = sod.kernel, sod.ffi
    bi = ffi.new("struct boot_info *")
    si = sod.make_start_info("ticks=3000 hex=0x10 bad=12x empty=")
    assert kernel.parse_start_info(si, bi) == 0
    assert kernel.boot_arg_ulong(bi, b"ticks", 7) == 3000
    assert kernel.boot_arg_ulong(bi, b"hex", 7) == 16
    assert kernel.boot_arg_ulong(bi, b"bad", 7) == 7
    assert kernel.boot_arg_ulong(bi, b"empty", 7) == 7
    assert kernel.boot_arg_ulong(bi, b"missing", 7) == 7
    assert kernel.boot_arg(bi, b"missing") == ffi.NULL


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.,:/-",
                min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_",
                               min_size=1, max_size=20), words, max_size=32),
       st.integers(min_value=1, max_value=3))
def test_cmd_line_round_trips(sod, args, spaces):
    line = (" " * spaces).join(f"{k}={v}" for k, v in args.items())
    assert sod.parse(sod.make_start_info(line)).args == args


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=1024))
def test_arbitrary_cmd_line_never_crashes(sod, raw):
    """Any bytes: parsed, or refused with a clear message; never a crash."""
    try:
        info = sod.parse(sod.make_start_info(raw))
    except StartInfoError as err:
        assert str(err)
    else:
        assert len(info.args) <= 32
