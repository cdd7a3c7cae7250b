"""Inside a Jupyter kernel, a compile error and a kernel panic are Python
exceptions in the cell; the Jupyter kernel lives on."""
from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from conftest import edit


def run_cells(sources: list[str]) -> list[nbformat.NotebookNode]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   allow_errors=True).execute()
    return nb.cells


def _error(cell) -> tuple[str, str]:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return errors[0].ename, errors[0].evalue


def test_compile_error_and_panic_in_a_notebook(kernel_copy):
    line = edit(kernel_copy / "start_of_day.c", "    bi->nr_args++;",
                "    bi->nr_args++ missing_semicolon")
    cells = run_cells([
        "from pathlib import Path\nfrom minios_lab.build.units import load\n"
        f"load('start_of_day', kernel_dir=Path({str(kernel_copy)!r}))",
        "from minios_lab.start_of_day import StartOfDay\nsod = StartOfDay()\n"
        "sod.kernel.start_of_day(sod.make_start_info(magic=b'not xen'))",
        "print(sod.parse(sod.make_start_info('alive=yes')).args)",
    ])
    name, value = _error(cells[0])
    assert name == "CompileError"
    assert f"kernel/start_of_day.c:{line}:" in value
    name, value = _error(cells[1])
    assert name == "KernelPanic"
    assert "bad magic" in value and "kernel/start_of_day.c:" in value
    assert cells[2].outputs[0].text.strip() == "{'alive': 'yes'}"
