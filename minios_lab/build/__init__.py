"""Building kernel code: the C toolchain, host builds of kernel units as
cffi extension modules (one per lesson), and the fault guard around them.

Nothing here knows a lesson: faces (the chapter modules) load units from here.
"""
