"""`make test`: the unit tests and nbval over every notebook, side by side.

On two cores neither run keeps both busy by itself: their tests wait for
QEMU, gcc, Jupyter kernels and a browser. Started together they end
sooner than one after the other (see the README's Numbers table). The unit
tests write to the terminal as they go; nbval's output is kept and shown
whole after theirs. The exit status is the unit tests', or nbval's if the
unit tests passed. Ctrl-C reaches both runs (they share the terminal's
process group); this waits for them to clean up, then says so.

    python scripts/run_tests.py UNIT-COMMAND... --- NBVAL-COMMAND...
"""
from __future__ import annotations

import subprocess
import sys
import tempfile

SEPARATOR = "---"
CLEAN_UP_S = 30       # after Ctrl-C, each run may take this long to stop


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=CLEAN_UP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str]) -> int:
    if SEPARATOR not in argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    at = argv.index(SEPARATOR)
    unit, nbval = argv[:at], argv[at + 1:]
    print(f"nbval runs beside the unit tests; its output follows theirs:\n"
          f"  {' '.join(nbval)}", flush=True)
    with tempfile.TemporaryFile() as log:
        notebooks = subprocess.Popen(nbval, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        unit_run = subprocess.Popen(unit)
        try:
            unit_status = unit_run.wait()
            notebooks_status = notebooks.wait()
        except KeyboardInterrupt:
            for proc in (unit_run, notebooks):
                _stop(proc)
            print("\nmake test: interrupted (Ctrl-C)", file=sys.stderr)
            return 130
        print(f"\n--- nbval over every notebook (it ran beside the unit "
              f"tests), exit {notebooks_status}:", flush=True)
        log.seek(0)
        sys.stdout.buffer.write(log.read())
        sys.stdout.flush()
    return unit_status or notebooks_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
