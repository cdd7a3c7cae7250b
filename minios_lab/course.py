"""Small helpers the notebooks share: doctor summaries, chapter checks."""
from __future__ import annotations

from .toolchain import doctor


def doctor_summary() -> str:
    """One line: how many of doctor's checks pass, and which do not."""
    checks = doctor()
    missing = [c.name for c in checks if not c.ok]
    if not missing:
        return f"all {len(checks)} checks pass"
    return f"{len(checks) - len(missing)} of {len(checks)} checks pass; " \
           f"missing: {', '.join(missing)} (run `minios-lab doctor`)"


def doctor_table() -> str:
    """doctor's checks as aligned text (paths and versions of this machine)."""
    checks = doctor()
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'ok' if c.ok else 'MISSING':7} {c.name:<{width}}  "
                     f"{c.detail}" for c in checks)
