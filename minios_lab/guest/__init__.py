"""The real guest: the image, its boot on Xen inside QEMU, crash reports,
and the live guest seen through gdb (guest/live)."""
