"""Build notebooks/NN-topic.ipynb from notebooks/src/NN-topic.py and run it.

The sources are plain Python in the "percent" format that Jupytext and VS
Code also read:

    # %% [markdown]
    # # A title
    # Some text.

    # %% tags=["raises-exception"]
    code()

Each notebook is executed top to bottom in notebooks/ and stored with its
outputs, which `pytest --nbval` later compares. Usage:

    python scripts/nbgen.py [notebooks/src/01-start-of-day.py ...]
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "notebooks" / "src"
OUT = REPO / "notebooks"

_MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse_cells(text: str) -> list[nbformat.NotebookNode]:
    cells, kind, tags, body = [], None, [], []

    def flush() -> None:
        source = "\n".join(body).strip("\n")
        if kind == "markdown":
            source = "\n".join(re.sub(r"^# ?", "", line)
                               for line in source.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(source))
        elif kind == "code" and source:
            cell = nbformat.v4.new_code_cell(source)
            if tags:
                cell.metadata["tags"] = tags
            cells.append(cell)

    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            body = []
        elif kind is not None:
            body.append(line)
    flush()
    return cells


def build(src: Path, execute: bool = True) -> Path:
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
    out = OUT / (src.stem + ".ipynb")
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
