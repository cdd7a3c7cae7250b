"""Python playing Xen for the host build, one lesson at a time.

Each class here serves the hypercalls one chapter's kernel code makes, and
says what real Xen does instead. Nothing here builds or loads C code.
"""
