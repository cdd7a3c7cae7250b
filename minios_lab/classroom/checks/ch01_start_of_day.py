"""Graded checks of chapter 01: start_info checks and command-line words."""
from __future__ import annotations

from minios_lab.classroom.checking import CheckFailed, Context, check


def _parse(ctx: Context, cmd_line: bytes = b"", **fields):
    """(return code, error text, {key: value}) of the kernel's parser."""
    kernel = ctx.unit("start_of_day")
    from minios_lab.start_of_day import DEFAULTS
    ffi = kernel.ffi
    si = ffi.new("start_info_t *")
    values = {**DEFAULTS, **fields}
    magic = values.pop("magic")
    ffi.memmove(si.magic, magic, len(magic))
    for name, value in values.items():
        setattr(si, name, value)
    ffi.memmove(si.cmd_line, cmd_line, len(cmd_line))
    bi = ffi.new("struct boot_info *")
    rc = kernel.parse_start_info(si, bi)
    args = {ffi.string(bi.args[i].key): ffi.string(bi.args[i].value)
            for i in range(bi.nr_args)}
    return rc, ffi.string(bi.error).decode(), args


@check("01", "start-info-checks", 5, "bad magic and absurd nr_pages refused")
def start_info_refused(ctx: Context) -> None:
    for fields, words in ((dict(magic=b"xen-3.0-x86_32p"), "magic"),
                          (dict(nr_pages=0), "nr_pages"),
                          (dict(nr_pages=1 << 40), "nr_pages")):
        rc, error, _ = _parse(ctx, **fields)
        if rc != -1 or words not in error:
            raise CheckFailed(f"start_info with {fields} was not refused "
                              f"(rc {rc}, error {error!r})")
    rc, error, _ = _parse(ctx)
    if rc != 0:
        raise CheckFailed(f"a good start_info was refused: {error!r}")


@check("01", "cmdline-words", 5, "key=value words split (host)")
def cmdline_host(ctx: Context) -> None:
    cases = {b"a=1 b=two": {b"a": b"1", b"b": b"two"},
             b"  spaced   out=yes ": {b"spaced": b"1", b"out": b"yes"},
             b"": {}}
    for line, expected in cases.items():
        rc, error, args = _parse(ctx, line)
        if rc != 0 or args != expected:
            raise CheckFailed(f"cmd_line {line!r} gave {args} (rc {rc}, "
                              f"{error!r}); expected {expected}")


@check("01", "cmdline-words", 5, "the booted guest lists its words")
def cmdline_guest(ctx: Context) -> None:
    result = ctx.boot("chapters=0 graded=yes n=42")
    lines = result.guest_lines
    ctx.expect_line(lines, r"^  arg graded = yes$", "guest command line")
    ctx.expect_line(lines, r"^  arg n = 42$", "guest command line")
