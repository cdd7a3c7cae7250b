"""`make site`: the stored notebooks as a static website, read offline.

The site is built once per test run (shared by xdist workers), then checked as
files (links, no CDN, hints, plots) and in headless Chromium (each page
renders its title and every plot, with no console errors).
"""
from __future__ import annotations

import html.parser
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from chromium import chrome
from conftest import made_once
from minios_lab.notebook import site

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(site.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


class _Tags(html.parser.HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _tags(page: Path) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tags


def _plots(path: Path) -> int:
    nb = json.loads(path.read_text())
    return sum(1 for cell in nb["cells"] for out in cell.get("outputs", [])
               if {"image/png", "image/svg+xml"} & set(out.get("data", {})))


def _hints(path: Path) -> int:
    nb = json.loads(path.read_text())
    return sum("".join(cell["source"]).count("<details")
               for cell in nb["cells"] if cell["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def built(run_folder: Path) -> Path:
    def make(folder: Path) -> tuple[Path, list]:
        return folder, [c.source for c in site.build(folder / "site")]
    folder, sources = made_once(run_folder, "the site", make)
    assert sources == NOTEBOOKS
    return folder / "site"


# --- pieces ---------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("see [next](01-start-of-day.ipynb).", "see [next](01-start-of-day.html)."),
    ("[t](03-page-allocator.ipynb#tasks)", "[t](03-page-allocator.html#tasks)"),
    ('<a href="sub/x.ipynb">x</a>', '<a href="sub/x.html">x</a>'),
    ("<a href='x.ipynb#a'>", "<a href='x.html#a'>"),
    ("[gh](https://github.com/o/r/blob/main/x.ipynb)",
     "[gh](https://github.com/o/r/blob/main/x.ipynb)"),
    ("open `00-welcome.ipynb` in JupyterLab", "open `00-welcome.ipynb` in JupyterLab"),
    ("[a](x.ipynbz)", "[a](x.ipynbz)"),
])
def test_links_to_notebooks_become_links_to_pages(text: str, expected: str) -> None:
    assert site.rewrite_links(text) == expected


@pytest.mark.parametrize("text, formula", [
    ("the sum $x_1 + x_2$ grows", "$x_1 + x_2$"),
    ("$$\\sum_i a_i$$", "$$\\sum_i a_i$$"),
    ("inline \\(a^2\\) here", "\\(a^2\\)"),
    ("costs $5 and $6 later", None),
    ("set `$CC` and `$LD`", None),
    ("```sh\necho $HOME$PATH\n```", None),
    ("plain text", None),
])
def test_tex_math_is_found_outside_code(text: str, formula: str | None) -> None:
    assert site.find_math(text) == formula


def _notebook(folder: Path, name: str, *markdown: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown]
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_math_stops_the_build_naming_the_cell(tmp_path: Path) -> None:
    src = tmp_path / "nb"
    src.mkdir()
    _notebook(src, "00-a.ipynb", "# A", "fine")
    bad = _notebook(src, "01-b.ipynb", "# B", "text", "so $e^{i\\pi}$ holds")
    before = bad.read_bytes()
    with pytest.raises(site.SiteError, match=r"01-b.ipynb cell 2: TeX math"):
        site.build(tmp_path / "out", src)
    assert bad.read_bytes() == before


def test_a_failed_build_leaves_the_site_as_it_was(tmp_path: Path) -> None:
    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    _notebook(src, "00-a.ipynb", "# A")
    _notebook(src, "01-b.ipynb", "# B", "[back](00-a.ipynb)")
    site.build(out, src)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"index.html", "00-a.html", "01-b.html"}
    _notebook(src, "00-a.ipynb", "# A", "a new paragraph")
    _notebook(src, "01-b.ipynb", "# B", "now $x^2$")
    with pytest.raises(site.SiteError, match="01-b"):
        site.build(out, src)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_removed_chapter_loses_its_page(tmp_path: Path) -> None:
    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    _notebook(src, "00-a.ipynb", "# A")
    _notebook(src, "01-b.ipynb", "# B")
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    site.build(out, src)
    (src / "01-b.ipynb").unlink()
    site.build(out, src)
    assert sorted(p.name for p in out.iterdir()) == [
        "00-a.html", "index.html", "notes.txt"]


def test_a_broken_notebook_is_named(tmp_path: Path) -> None:
    src = tmp_path / "nb"
    src.mkdir()
    _notebook(src, "00-a.ipynb", "# A")
    (src / "01-b.ipynb").write_text('{"cells": [')
    with pytest.raises(site.SiteError, match=r"01-b.ipynb: not a readable notebook"):
        site.build(tmp_path / "out", src)


def test_no_notebooks_and_no_title_are_errors(tmp_path: Path) -> None:
    with pytest.raises(site.SiteError, match="no NN-"):
        site.build(tmp_path / "out", tmp_path)
    _notebook(tmp_path, "00-a.ipynb", "no heading here")
    with pytest.raises(site.SiteError, match="no Markdown heading"):
        site.build(tmp_path / "out", tmp_path)


def test_main_reports_an_error_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert site.main([str(tmp_path / "out"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minios-lab site: ") and "Traceback" not in err


# --- the built site, as files ---------------------------------------------

def test_index_lists_every_chapter_in_order(built: Path) -> None:
    links = [a["href"] for tag, a in _tags(built / "index.html") if tag == "a"]
    assert links == [p.with_suffix(".html").name for p in NOTEBOOKS]
    text = (built / "index.html").read_text()
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert ">" + site.chapter_title(nb, path) + "</a>" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_page_links_resolve_and_nothing_comes_from_a_cdn(
        built: Path, path: Path) -> None:
    page = built / path.with_suffix(".html").name
    tags = _tags(page)
    hrefs = [a.get("href", "") for tag, a in tags if tag == "a"]
    local = [h.split("#")[0] for h in hrefs
             if h and not h.startswith(("#", "http://", "https://", "mailto:"))]
    assert local, "no link to the index or the next chapter"
    assert not [h for h in local if h.endswith(".ipynb")]
    assert [h for h in local if not (built / unquote(h)).is_file()] == []
    remote = [a.get("src") or a.get("href") for tag, a in tags
              if tag in ("script", "link", "img", "iframe")
              and re.match(r"(https?:)?//", a.get("src") or a.get("href") or "")]
    assert remote == []
    assert "cdnjs" not in page.read_text() and "cdn.jsdelivr" not in page.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_page_keeps_hints_and_plots(built: Path, path: Path) -> None:
    tags = _tags(built / path.with_suffix(".html").name)
    assert sum(tag == "details" for tag, _ in tags) == _hints(path)
    images = [a["src"] for tag, a in tags if tag == "img"]
    assert len(images) == _plots(path)
    assert all(src.startswith("data:image/") for src in images)


def test_some_chapter_has_hints_and_plots() -> None:
    """Guards the two tests above against a course with nothing to check."""
    assert sum(map(_hints, NOTEBOOKS)) > 0 and sum(map(_plots, NOTEBOOKS)) > 0


def test_make_site_is_a_listed_target() -> None:
    proc = subprocess.run(["make", "--no-print-directory"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert any(line.split()[1] == "site" for line in proc.stdout.splitlines())
    assert "site/" in (REPO / ".gitignore").read_text().splitlines()


# --- the built site, in headless Chromium ---------------------------------

@pytest.fixture(scope="module")
def browser():
    with chrome() as driver:
        yield driver


def _open(browser, page: Path, expect: tuple[str, ...] = ()) -> list[dict]:
    """Load the page; the SEVERE entries of the browser's console. Entries
    may reach the log after the page has loaded (a loaded machine): read
    it until every `expect` text is in, or for 10 s; at least twice."""
    browser.get_log("browser")   # drop what an earlier page left
    browser.get(page.as_uri())
    found: list[dict] = []
    deadline = time.monotonic() + 10
    for attempt in itertools.count():
        found += [e for e in browser.get_log("browser")
                  if e["level"] == "SEVERE"]
        seen = all(any(t in e["message"] for e in found) for t in expect)
        if (seen and attempt >= 1) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_console_check_sees_errors(browser, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<title>bad</title><img src="missing.png">'
                    '<script>throw new Error("boom")</script>')
    errors = _open(browser, page, expect=("boom", "missing.png"))
    assert any("boom" in e["message"] for e in errors)
    assert any("missing.png" in e["message"] for e in errors)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_page_renders_in_chromium(browser, built: Path, path: Path) -> None:
    page = built / path.with_suffix(".html").name
    assert _open(browser, page) == []
    nb = nbformat.read(path, as_version=4)
    assert browser.title == site.chapter_title(nb, path)
    drawn = browser.execute_script(
        "return Array.from(document.images)"
        ".filter(i => i.complete && i.naturalWidth > 0).length")
    assert drawn == _plots(path)
    hrefs = browser.execute_script(
        "return Array.from(document.links).map(a => a.href)")
    files = [Path(unquote(urlparse(h).path)) for h in hrefs
             if h.startswith("file:")]
    assert files and all(f.is_file() for f in files)


def test_index_renders_in_chromium(browser, built: Path) -> None:
    assert _open(browser, built / "index.html") == []
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('ol.chapters a'))"
        ".map(a => a.textContent)")
    assert titles == [site.chapter_title(nbformat.read(p, as_version=4), p)
                      for p in NOTEBOOKS]
