"""The course as a static website, built from the stored notebooks.

``make site`` (``python -m minios_lab.notebook.site [OUT]``) renders every
``notebooks/NN-*.ipynb`` as it is stored, outputs included and nothing
executed, with nbconvert's HTML exporter (JupyterLab's look), and writes an
``index.html`` that lists the chapters in order. The pages are for reading
without running and without a network:

* links between chapters (``02-minimal-libc.ipynb#tasks``) point to the
  rendered pages (``02-minimal-libc.html#tasks``); links with a scheme
  (``https://...``) are left alone;
* no script or style sheet is loaded from a CDN: the template drops
  require.js (no widgets here), MathJax and mermaid, and inlines its CSS;
  plots are PNG data inside the page. The notebooks use no TeX math, and
  the build stops with an error naming the cell if one starts to, rather
  than shipping raw TeX;
* each chapter page ends with links to the index and its neighbours.

The pages show what the notebooks store, solutions included in the
instructor's tree. For a site without them, build it from a hand-out:
``minios-lab assignment /tmp/h && python -m minios_lab.notebook.site OUT /tmp/h/notebooks``.
"""
from __future__ import annotations

import minios_lab

import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter

REPO = minios_lab.REPO_DIR
NOTEBOOKS = REPO / "notebooks"
SITE = REPO / "site"

# JupyterLab's template, minus everything it would fetch from a CDN.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{% block body_footer %}
<nav class="site-nav" style="margin: 2em 0; text-align: center;
 font-family: var(--jp-ui-font-family);">
{{ resources.site_nav }}
</nav>
{{ super() }}
{% endblock body_footer %}
"""

# A relative link to a notebook, in Markdown ](x.ipynb) or HTML href="x.ipynb".
_NB_LINK = re.compile(
    r"""(?P<lead>\]\(\s*<?|href\s*=\s*["'])"""
    r"""(?P<path>(?![a-zA-Z][a-zA-Z0-9+.-]*:)[^\s"'()<>#]*?)\.ipynb"""
    r"""(?=[#"')>\s])""")
# TeX math outside code: $$...$$, \[...\], \(...\), or $x$ hugging its text.
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^\s$](?:[^$\n]*?[^\s$\\])?\$",
                   re.S)


class SiteError(Exception):
    """The site cannot be built as asked (the message says why)."""


@dataclass(frozen=True)
class Chapter:
    """One notebook and the page it becomes."""

    source: Path
    title: str

    @property
    def page(self) -> str:
        return self.source.with_suffix(".html").name


def rewrite_links(text: str) -> str:
    """``x.ipynb`` links (relative ones only) pointing to ``x.html``."""
    return _NB_LINK.sub(lambda m: f"{m['lead']}{m['path']}.html", text)


def find_math(text: str) -> str | None:
    """The first TeX formula in Markdown text, outside code; else None."""
    match = _MATH.search(_CODE.sub("", text))
    return match.group(0) if match else None


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """A stored notebook, or SiteError naming the file and the problem."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError, json.JSONDecodeError,
            nbformat.reader.NotJSONError) as exc:
        raise SiteError(f"{path}: not a readable notebook: {exc}") from exc


def chapter_title(nb: nbformat.NotebookNode, path: Path) -> str:
    """The text of the notebook's first Markdown heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    raise SiteError(f"{path}: no Markdown heading to title the page with")


def prepare(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """Links rewritten to pages; SiteError if a cell needs TeX math."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            formula = find_math(cell.source)
            if formula:
                raise SiteError(f"{path} cell {index}: TeX math {formula!r}; "
                                "the site ships no MathJax")
            cell.source = rewrite_links(cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                body = data["text/html"]
                body = "".join(body) if isinstance(body, list) else body
                data["text/html"] = rewrite_links(body)
    return nb


def _nav(chapters: list[Chapter], i: int) -> str:
    links = []
    if i > 0:
        links.append(_a(chapters[i - 1].page, "← " + chapters[i - 1].title))
    links.append(_a("index.html", "Contents"))
    if i + 1 < len(chapters):
        links.append(_a(chapters[i + 1].page, chapters[i + 1].title + " →"))
    return " · ".join(links)


def _a(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def index_page(chapters: list[Chapter]) -> str:
    """The contents page: every chapter in order, titled and linked."""
    items = "\n".join(f"<li>{_a(c.page, c.title)}</li>" for c in chapters)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>minios-lab: contents</title>
<style>body {{ font-family: sans-serif; max-width: 40em; margin: 3em auto;
line-height: 1.5; }} li {{ margin: .3em 0; }}</style></head>
<body>
<h1>minios-lab</h1>
<p>A literate course on Xen's Mini-OS, one chapter per subsystem, shown
here with the outputs stored in the notebooks. To run the code, clone the
kit and <code>make lab</code>.</p>
<ol start="0" class="chapters">
{items}
</ol>
</body>
</html>
"""


def build(out: Path = SITE, notebooks: Path = NOTEBOOKS) -> list[Chapter]:
    """Write the site into ``out``: one page per notebook and the index.

    Every page is rendered before the first is written, so a notebook that
    cannot be built leaves ``out`` as it was; pages of chapters that no
    longer exist are removed.
    """
    paths = sorted(notebooks.glob("[0-9][0-9]-*.ipynb"))
    if not paths:
        raise SiteError(f"{notebooks}: no NN-*.ipynb notebooks to build")
    books = [prepare(read_notebook(p), p) for p in paths]
    chapters = [Chapter(p, chapter_title(nb, p)) for p, nb in zip(paths, books)]
    exporter = HTMLExporter(extra_loaders=[DictLoader({"site.j2": TEMPLATE})],
                            template_file="site.j2")
    pages = {"index.html": index_page(chapters)}
    for i, nb in enumerate(books):
        nb.metadata["title"] = chapters[i].title
        pages[chapters[i].page], _ = exporter.from_notebook_node(
            nb, resources={"site_nav": _nav(chapters, i)})
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("[0-9][0-9]-*.html"):
        if stale.name not in pages:
            stale.unlink()
    for name, body in pages.items():
        (out / name).write_text(body, encoding="utf-8")
    return chapters


def main(argv: list[str] | None = None) -> int:
    """``python -m minios_lab.notebook.site [OUT [NOTEBOOKS]]``"""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else SITE
    notebooks = Path(args[1]) if len(args) > 1 else NOTEBOOKS
    try:
        chapters = build(out, notebooks)
    except SiteError as exc:
        print(f"minios-lab site: {exc}", file=sys.stderr)
        return 1
    print(f"minios-lab site: {len(chapters)} chapters in {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
