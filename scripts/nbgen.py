"""Build notebooks/NN-topic.ipynb from notebooks/src/NN-topic.py and run it.

The sources are plain Python in Jupytext's "percent" format (VS Code reads
it too), read and written by Jupytext itself:

    # %% [markdown]
    # # A title
    # Some text.

    # %% tags=["raises-exception"]
    code()

A cell keeps only its tags; what Jupytext records for its own round trip
(blank lines between cells, its header) is left out of the notebook, so a
notebook depends only on its cells.

Each notebook is executed top to bottom in notebooks/ and stored with its
outputs, which `pytest --nbval` later compares. Usage:

    python scripts/nbgen.py [notebooks/src/01-start-of-day.py ...]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "notebooks" / "src"
OUT = REPO / "notebooks"
FORMAT = "py:percent"


def parse_cells(text: str) -> list[nbformat.NotebookNode]:
    """The cells of a percent-format source, as Jupytext reads them."""
    cells = []
    for cell in jupytext.reads(text, fmt=FORMAT).cells:
        if cell.cell_type == "code" and not cell.source:
            continue
        tags = cell.metadata.get("tags", [])
        cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        cells.append(cell)
    return cells


def source_text(nb: nbformat.NotebookNode) -> str:
    """A notebook's cells written back as a percent-format source."""
    return jupytext.writes(nb, fmt=FORMAT)


def build(src: Path, execute: bool = True, out_dir: Path = OUT) -> Path:
    """Write out_dir/<src's name>.ipynb from `src`, run unless `execute` is False."""
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_cells(src.read_text())
    # What JupyterLab itself writes on opening (the installed kernel's own
    # spec): any other value marks a notebook modified just by reading it.
    spec = KernelSpecManager().get_kernel_spec("python3")
    nb.metadata["kernelspec"] = {"name": "python3",
                                 "display_name": spec.display_name,
                                 "language": spec.language}
    nb.metadata["language_info"] = {"name": "python"}
    if execute:
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(OUT)}}).execute()
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{src.stem[:2]}-{i:03d}"
        for output in cell.get("outputs", []):  # no paths of this machine
            if output.get("output_type") == "error":
                output["traceback"] = [line.replace(f"{REPO}/", "")
                                       for line in output["traceback"]]
    out = out_dir / (src.stem + ".ipynb")
    nbformat.write(nb, out)
    return out


def main(argv: list[str]) -> int:
    sources = [Path(a) for a in argv] or sorted(SRC.glob("*.py"))
    for src in sources:
        start = time.monotonic()
        out = build(src)
        print(f"{out.relative_to(REPO)}: {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
