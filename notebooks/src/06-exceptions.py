# %% [markdown]
# # 06 · The virtual exception table
#
# **What you will do.** Read the table of exception handlers that the
# kernel gives Xen, play Xen yourself and deliver exceptions to the
# kernel's real C handlers, look at the stack frame Xen builds, and then
# watch the same handlers survive a breakpoint, an invalid opcode, a
# division by zero and a page fault on a real Xen.
#
# **What you will learn.** Why a PV guest has no IDT and what it has
# instead; what Xen writes on the guest's stack when it "bounces" an
# exception; how a handler recovers through a fix-up table or stops the
# guest; where a PV guest finds the faulting address of a page fault; how
# the event mask is saved and restored around an exception.
#
# **What you need.** Chapters 00 and 01. Some x86 assembly helps.
#
# ## No IDT for a PV guest
#
# On bare metal, the CPU finds exception handlers in the IDT, which only
# ring 0 may load. A PV kernel runs in ring 3: Xen owns the real IDT. The
# guest describes its handlers in a *virtual* IDT instead, one `trap_info`
# per vector, and hands the array to Xen with the hypercall
# `HYPERVISOR_set_trap_table`. Xen's header:

# %%
from minios_lab.notebook.source import file_comment, show, show_xen
show_xen("arch-x86/xen.h", "trap_info")

# %% [markdown]
# The `flags` byte holds the *DPL* (who may raise the vector with an
# `int $n` instruction) and one more bit: mask events on entry, as an
# interrupt gate clears IF on bare metal. The kernel keeps one descriptor
# per vector it handles and turns each into a `trap_info`:

# %%
show("traps.c", "trap_desc")

# %%
show("traps.c", "fill_trap_info")

# %% [markdown]
# `TI_SET_DPL` and `TI_SET_IF` are Xen's own macros for the two fields of
# `flags`. `traps_init()` fills the table, ends it with an entry whose
# address is 0 (Xen stops there), and registers two *callbacks*: where Xen
# delivers events (chapter 07) and where it goes when it cannot return to
# the guest at all (the "failsafe" callback).

# %%
show("traps.c", "traps_init")

# %% [markdown]
# ## Python plays Xen
#
# `minios_lab.traps.Traps` builds `kernel/traps.c` for the host and runs
# `traps_init()`. The two hypercalls land in Python, which records them,
# so we can read the table the kernel registered:

# %%
from minios_lab.traps import Traps
traps = Traps()
print([(c.name, c.note) for c in traps.hypervisor.calls[:3]])
for e in traps.trap_table():
    print(f"{e.vector:3} {e.mnemonic:5} {e.name:29} DPL {e.dpl}"
          f"{'  masks events' if e.masks_events else ''}   -> {e.entry}")

# %%
traps.callbacks()

# %% [markdown]
# `masks_events` of a callback is the `CALLBACKF_mask_events` flag the
# kernel passed to `callback_op`. Xen's `callback.h` says this flag is
# *ignored* for the event and NMI callbacks: Xen always masks events
# (sets `evtchn_upcall_mask`) before it enters them, so an event handler
# is never interrupted by the next event. So the kernel passes 0 for the
# event callback, and the flag counts only for the failsafe callback, where
# the kernel asks for it: that handler only reports and stops the guest.
#
# Three choices show in the table. `int3` has DPL 3, so that code in any
# ring may use breakpoints; every other vector has DPL 0, and an `int $13`
# aimed at it becomes a general protection fault instead. Only the page
# fault masks events: why, we will see below. Vectors 2, 8 and 18 are
# missing. An NMI never goes through the trap table: Xen delivers a
# virtual NMI to a callback of its own (`CALLBACKTYPE_nmi` in
# `callback.h`), which this kernel does not register. A double fault is
# Xen's own business. A machine check can reach a guest: Xen's
# `arch-x86/xen-mca.h` says a guest that wants to hear of uncorrectable
# hardware errors registers a machine-check handler as vector 18 in its
# trap table (and dom0 hears of correctable ones through `VIRQ_MCA`). This
# small kernel registers neither.

# %%
from minios_lab.viz.traps import plot_trap_table
fig = plot_trap_table(traps.trap_table())

# %% [markdown]
# ## The bounce frame
#
# When the CPU raises an exception in the guest, Xen takes it first. It
# then writes a frame on the guest kernel's stack and jumps to the
# handler's address: a *bounce*. The frame looks like the one the CPU
# pushes on bare metal (`ss`, `rsp`, `rflags`, `cs`, `rip`, an error code
# for some vectors), plus two words on top: Xen returns to the guest with
# `sysret`, which destroys `rcx` and `r11`, so it saved them there. Xen
# also tucks the event mask it found into bits 32-39 of the `cs` word.
#
# The stub in `entry.S` pops `rcx` and `r11` back, pushes a 0 where the
# CPU gave no error code, pushes the vector, then every other register.
# What is on the stack then is a `struct pt_regs`:

# %%
show("include/minios/traps.h", "pt_regs")

# %%
show("arch/x86_64/entry.S", "exception_common")

# %% [markdown]
# Both views of the same stack memory, side by side (a page fault, which
# has an error code):

# %%
from minios_lab.traps import bounce_frame_layout, pt_regs_layout
from minios_lab.viz.traps import plot_frames
fig = plot_frames(bounce_frame_layout(has_error_code=True),
                  pt_regs_layout(traps.ffi))

# %% [markdown]
# The way back is not `iretq` but Xen's `iret` hypercall. The stub jumps
# (it never returns) to the hypercall page with the frame Xen wants on the
# stack; the hypercall page's code pushes `rcx`, `r11` and `rax` itself:

# %%
show_xen("arch-x86/xen-x86_64.h", "iret_context")

# %%
show("arch/x86_64/entry.S", "iret_to_interrupted")

# %% [markdown]
# ## Handlers
#
# Every stub ends up in `do_exception()`, which counts, records and calls
# the handler of the vector:

# %%
show("traps.c", "do_exception")

# %% [markdown]
# In the host build nothing really faults. `raise_exception()` does Xen's
# and the stub's part: it builds the `pt_regs` Xen and the stub would
# build and calls `do_exception()`. A breakpoint is a *trap*: `rip`
# already points after the `int3`, so the handler just returns.

# %%
bp = traps.raise_exception(3, rip=0x1001, rax=42)
print(bp.console)
bp

# %% [markdown]
# An invalid opcode is a *fault*: `rip` points at the instruction itself,
# and returning would run it again, forever. Unless someone said where to
# go instead, the handler stops the guest. In the host build the panic
# arrives as a Python exception:

# %%
from minios_lab.errors import KernelPanic
try:
    traps.raise_exception(6, rip=0x2000)
except KernelPanic as panic:
    print(panic)

# %% [markdown]
# ## The fix-up table
#
# Code that may fault *on purpose* registers "if an exception hits at this
# instruction, go on at that one". The handler looks the faulting `rip` up,
# rewrites `pt_regs.rip`, and the `iret` lands there. Linux reads user
# memory this way (`copy_from_user`):

# %%
show("traps.c", "recover_or_die")

# %%
traps.add_fixup(0x2000, 0x2040)
ud = traps.raise_exception(6, rip=0x2000)
print(ud)

# %% [markdown]
# ## Page faults and cr2
#
# On bare metal the faulting address of a page fault is in the register
# `cr2`, which a ring-3 kernel cannot read. Xen writes it into the vCPU's
# `vcpu_info` in the shared page instead (`arch.cr2`), just before the
# bounce; in the host build Python owns that `vcpu_info` and writes it.

# %%
show("traps.c", "do_page_fault")

# %%
traps.add_fixup(0x3000, 0x3010)
pf = traps.raise_exception(14, rip=0x3000, error_code=0x2, cr2=0xDEAD0000)
print(pf.console)

# %% [markdown]
# Now the event mask. Suppose events were enabled when the fault hit, and
# an event arrived before the handler read `arch.cr2`: the event handler
# would run first, and if *it* faulted, Xen would overwrite `arch.cr2`.
# That is why the page fault's entry asks Xen to mask events on entry. The
# old mask goes into the frame (bits 32-39 of `cs`, and RFLAGS.IF), and the
# `iret` hypercall puts it back in the same step as the return: no window
# where events are on but the handler still runs.

# %%
for vector, rip in ((3, 0x1001), (14, 0x3000)):
    out = traps.raise_exception(vector, rip=rip, cr2=0xDEAD0000,
                                events_enabled=True)
    print(f"{out.mnemonic}: mask in handler {out.mask_in_handler}, "
          f"after iret {out.mask_after}")

# %% [markdown]
# ## The real thing
#
# In the guest, `kernel/traps_demo.c` installs the table and triggers real
# exceptions with tiny assembly functions. Each exports a label for the
# instruction that faults and one for its landing:

# %%
show("arch/x86_64/trap_demo.S")

# %% [markdown]
# Booted on Xen, the chapter checks each outcome itself (the register
# dumps are left out here: their addresses change with every build):

# %%
from minios_lab.guest.boot import boot
from minios_lab.traps import demo_verdicts, summary_lines
result = boot("")
print("\n".join(summary_lines(result.section("traps"))))

# %%
demo_verdicts(result.section("traps"))

# %% [markdown]
# The addresses the handlers printed are the guest's own labels:

# %%
from minios_lab.start_of_day import symbol_address
elf = "../kernel/build/minios.elf"
fault = symbol_address(elf, "trap_demo_read_fault")
landing = symbol_address(elf, "trap_demo_read_landing")
f"fix-up: rip {fault:#x} -> landing {landing:#x}" in "\n".join(
    result.section("traps"))

# %% [markdown]
# And a fault nobody expected stops the guest with a report naming the
# handler, the faulting address and the instruction:

# %%
fatal = boot("trapfatal=1")
print(fatal.outcome)
print(next(x for x in fatal.guest_lines if x.startswith("PANIC")).split(
    " at rip")[0])

# %% [markdown]
# ## Exercises
#
# 1. **Recover a #GP.** Register a fix-up from `0x5000` to `0x5100`, then
#    raise a general protection fault (vector 13, error code `0x18`) at
#    `0x5000`. Store the outcome in `gp`.
# 2. **Error codes.** Using `traps.has_error_code()`, store in
#    `with_code` the set of registered vectors for which the CPU pushes an
#    error code.
# 3. **Events during a fault.** Raise a page fault at `0x3000` with
#    `events_enabled=False`. Store the mask the handler saw and the mask
#    after the `iret` in `masks` (a pair).
# 4. *(C)* In `fill_trap_info()`, what would change if `int3` also had the
#    event-mask flag? Which line of the `eventmask` demonstration above
#    would say so?
#
# <details><summary>Hint 1</summary>
#
# `traps.add_fixup(fault, landing)` first, then `traps.raise_exception(13, 0x5000, error_code=0x18)`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Loop over the vectors of `traps.trap_table()` and keep those for which `traps.has_error_code(vector)` is true.
# </details>
#
# <details><summary>Hint 3</summary>
#
# The outcome of `raise_exception` has `mask_in_handler` and `mask_after`.
# </details>

# %%
### BEGIN SOLUTION
traps.add_fixup(0x5000, 0x5100)
gp = traps.raise_exception(13, rip=0x5000, error_code=0x18)
### END SOLUTION
assert gp.fixed_up, "the #GP was not fixed up: register the fix-up first"
assert gp.resumed_at == 0x5100, f"resumed at {gp.resumed_at:#x}, not 0x5100"
assert gp.error_code == 0x18, f"error code {gp.error_code:#x}, not 0x18"
print("check passed")

# %%
### BEGIN SOLUTION
with_code = {e.vector for e in traps.trap_table()
             if traps.has_error_code(e.vector)}
### END SOLUTION
assert with_code == {10, 11, 12, 13, 14, 17}, f"got {sorted(with_code)}"
print("check passed")

# %%
### BEGIN SOLUTION
out = traps.raise_exception(14, rip=0x3000, events_enabled=False)
masks = (out.mask_in_handler, out.mask_after)
### END SOLUTION
assert masks == (1, 1), f"got {masks}: events were off before the fault"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# Xen would then mask events on entry to the breakpoint handler too, as
# it does for the page fault: it saves the mask it found in the frame,
# sets it, and the `iret` hypercall restores it. With events enabled
# before the `int3`, the handler would see mask 1 instead of 0, and the
# mask after the return would still be 0. The demonstration would say
# so in its first line, `#BP: mask in handler 1, after iret 0` (and the
# guest's `eventmask` line would report that the int3 handler saw mask 1).
# Nothing breaks, but a breakpoint handler would then hold off events for
# no reason.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/traps.c`, are `fill_trap_info`, `recover_or_die`, `do_page_fault`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("fill_trap_info")

# %%
check_region("fill_trap_info")

# %%
show_task("recover_or_die")

# %%
check_region("recover_or_die")

# %%
show_task("do_page_fault")

# %%
check_region("do_page_fault")

# %% [markdown]
# ## Further reading
#
# * `xen/arch-x86/xen.h` (`trap_info`, `TI_SET_IF`) and
#   `xen/arch-x86/xen-x86_64.h` (`HYPERVISOR_iret`, `iret_context`), and
#   `xen/callback.h`.
# * Xen's `create_bounce_frame` in `xen/arch/x86/x86_64/entry.S`: the
#   frame, word by word.
# * Mini-OS `arch/x86/x86_64.S` and `arch/x86/traps.c`; Linux
#   `arch/x86/xen/xen-asm.S` (`xen_iret`).
# * Intel SDM volume 3, chapter 6: exception classes (trap, fault, abort)
#   and which vectors push an error code.

# %% [markdown]
# ## What you learned
#
# * A PV kernel runs in ring 3 and has no IDT: it gives Xen a virtual one,
#   a `trap_info` per vector, with `set_trap_table`.
# * Xen "bounces" an exception: it writes a frame on the guest's stack
#   (with `rcx` and `r11` on top) and jumps to the handler; the way back is
#   the `iret` hypercall.
# * A handler recovers through a fix-up table or stops the guest with a
#   report.
# * A page fault's address is in `vcpu_info.arch.cr2`, not in `cr2`; the
#   page fault masks events on entry so that an event cannot overwrite it.
# * Events and NMIs come through callbacks, registered with `callback_op`,
#   not through the trap table.
#
# Chapter 07 builds on the event callback registered here: it is where Xen
# delivers event channels, the PV guest's interrupts.
#
# Next: [07 · Event channels](07-events.ipynb).
