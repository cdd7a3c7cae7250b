"""Opening a stored notebook in JupyterLab must not change it.

When JupyterLab connects a notebook to its kernel it writes the kernel's
kernelspec (name, display_name, language) into the notebook's metadata; a
stored value that differs marks the notebook modified just by opening it,
and autosave then rewrites a tracked file. Measured with JupyterLab 4.6.6
in headless Chromium: "Python 3" is rewritten to "Python 3 (ipykernel)" and
the tab is marked dirty; with ipykernel's own display_name it is not.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def _installed_kernelspec() -> dict[str, str]:
    """What JupyterLab writes: the installed python3 kernel's own spec."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"name": "python3", "display_name": spec.display_name,
            "language": spec.language}


def _stored_kernelspec(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())["metadata"]["kernelspec"]


def test_the_course_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 10


def test_the_installed_kernel_is_ipykernels_python3() -> None:
    spec = _installed_kernelspec()
    assert spec["language"] == "python"
    assert spec["display_name"]   # e.g. "Python 3 (ipykernel)"


@pytest.mark.xfail(reason="waiting for notebooks regenerated", strict=True)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_kernelspec_is_what_jupyterlab_writes(path: Path) -> None:
    assert _stored_kernelspec(path) == _installed_kernelspec()
