"""scripts/nbgen.py reads notebooks/src/*.py with Jupytext (percent format).

Only the cells' types, sources and tags reach a notebook; nothing is run
here (building the stored notebooks is `make notebooks`).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "notebooks" / "src").glob("*.py"))


def _load_nbgen():
    spec = importlib.util.spec_from_file_location(
        "nbgen", REPO / "scripts" / "nbgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nbgen = _load_nbgen()

SAMPLE = '''# %% [markdown]
# # A title
#
# Some *text*.

# %%
x = 1
print(x)

# %% tags=["raises-exception"]
1 / 0

# %% [markdown]
# The end.
'''


def _cells(cells) -> list[tuple[str, str, dict]]:
    return [(c.cell_type, c.source, dict(c.metadata)) for c in cells]


def test_percent_cells_with_their_tags_and_nothing_else():
    assert _cells(nbgen.parse_cells(SAMPLE)) == [
        ("markdown", "# A title\n\nSome *text*.", {}),
        ("code", "x = 1\nprint(x)", {}),
        ("code", "1 / 0", {"tags": ["raises-exception"]}),
        ("markdown", "The end.", {}),
    ]


@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_every_source_survives_a_jupytext_round_trip(src: Path):
    cells = nbgen.parse_cells(src.read_text())
    assert cells, f"{src.name} has no cells"
    nb = nbformat.v4.new_notebook(cells=cells)
    assert _cells(nbgen.parse_cells(nbgen.source_text(nb))) == _cells(cells)


def test_build_writes_a_deterministic_notebook(tmp_path: Path):
    src = tmp_path / "07-sample.py"
    src.write_text(SAMPLE)
    one = nbgen.build(src, execute=False, out_dir=tmp_path)
    first = one.read_bytes()
    two = nbgen.build(src, execute=False, out_dir=tmp_path)
    assert two == tmp_path / "07-sample.ipynb" and two.read_bytes() == first
    nb = json.loads(first)
    assert [c["id"] for c in nb["cells"]] == [f"07-{i:03d}" for i in range(4)]
    assert set(nb["metadata"]) == {"kernelspec", "language_info"}
