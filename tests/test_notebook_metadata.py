"""Opening a stored notebook in JupyterLab must not change it.

When JupyterLab connects a notebook to its kernel it writes the kernel's
kernelspec (name, display_name, language) into the notebook's metadata; a
stored value that differs marks the notebook modified just by opening it,
and autosave then rewrites a tracked file. Measured with JupyterLab 4.6.6
in headless Chromium: "Python 3" is rewritten to "Python 3 (ipykernel)" and
the tab is marked dirty; with ipykernel's own display_name it is not.
It writes language_info the same way, so a stored language_info.version
other than the kernel's Python marks it dirty too (see requests-G.md).

The last tests run `make lab`'s JupyterLab (lab_command()) on copies of the
notebooks and look inside it from headless Chromium: it opens on
00-welcome.ipynb, never asks about Jupyter news, and opening any notebook
leaves it unmodified once its kernel is connected.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.request
from urllib.parse import urlparse
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from chromium import chrome

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_kernelspec_is_what_jupyterlab_writes(path: Path) -> None:
    assert _stored_kernelspec(path) == _installed_kernelspec()


# --- the real thing: `make lab`'s JupyterLab, in headless Chromium --------
#
# JupyterLab runs with lab_command()'s arguments (what `make lab` runs) plus
# the test's own: a free port, a token, no browser, window.jupyterapp exposed,
# and copies of the notebooks as its root, with Jupyter's config, data and
# runtime folders in tmp (no saved workspace, no user settings).

TOKEN = "minios-lab-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """(base URL, root folder) of a running JupyterLab."""
    from minios_lab.cli import lab_command
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    root.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, root / path.name)
    port = _free_port()
    env = dict(os.environ, **{f"JUPYTER_{d}_DIR": str(tmp / d.lower())
                              for d in ("CONFIG", "DATA", "RUNTIME")})
    # the copies replace lab_command()'s notebooks/ as the server's root
    cmd = [a for a in lab_command()
           if not a.startswith(("--notebook-dir=", "--ServerApp.root_dir="))]
    assert len(cmd) == len(lab_command()) - 1, lab_command()
    cmd += [
        "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root}"]
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if server.poll() is not None:
                pytest.fail("JupyterLab did not start:\n"
                            + (tmp / "server.log").read_text()[-3000:])
            try:
                listing = _get(f"{base}/api/contents?token={TOKEN}")
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("JupyterLab did not answer in 60 s")
        # the server works on the copies, never on the tracked notebooks
        assert {c["name"] for c in listing["content"]} == {p.name for p in NOTEBOOKS}
        yield base, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def lab_page(lab):
    base, root = lab
    with chrome() as driver:
        driver.set_script_timeout(120)
        driver.get(f"{base}/?token={TOKEN}")   # the server sends it to its default_url
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const wait = () => window.jupyterapp ?"
            " window.jupyterapp.restored.then(() => done(true)) : setTimeout(wait, 100);"
            "wait();")
        yield driver, root


# Open a notebook (or take the one on screen) and wait until JupyterLab has
# connected its kernel and written the kernel's kernelspec and language_info
# into the model (it always does; the stored values decide whether that is a
# change); then say whether the model is dirty.
_OPEN_AND_SETTLE = """
const [path, done] = [arguments[0], arguments[arguments.length - 1]];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
(async () => {
  const app = window.jupyterapp;
  const panel = path ? await app.commands.execute('docmanager:open', {path})
                     : app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session.kernel;
  const spec = await kernel.spec, info = await kernel.info;
  const model = panel.context.model;
  const settled = () => {
    const ks = model.getMetadata('kernelspec') || {};
    const li = model.getMetadata('language_info') || {};
    return ks.display_name === spec.display_name &&
      same(Object.keys(li).sort().map(k => [k, li[k]]),
           Object.keys(info.language_info).sort().map(k => [k, info.language_info[k]]));
  };
  for (let i = 0; i < 600 && !settled(); i++)
    await new Promise(r => setTimeout(r, 100));
  const state = {path: panel.context.path, dirty: model.dirty, settled: settled(),
                 kernelspec: model.getMetadata('kernelspec')};
  if (path) {   // one kernel at a time: stop it, drop the tab unsaved
    await panel.sessionContext.shutdown();
    panel.dispose();
  }
  done(state);
})().catch(e => done({error: String(e)}));
"""


def test_make_lab_opens_on_the_welcome_notebook(lab_page) -> None:
    driver, _ = lab_page
    assert urlparse(driver.current_url).path == "/lab/tree/00-welcome.ipynb"
    shown = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        (async () => {
          const shell = window.jupyterapp.shell;
          for (let i = 0; i < 600; i++) {
            const w = shell.currentWidget;
            if (w && w.context) return done(w.context.path);
            await new Promise(r => setTimeout(r, 100));
          }
          done(null);
        })().catch(e => done('error: ' + e));""")
    assert shown == "00-welcome.ipynb"


def test_make_lab_never_asks_about_jupyter_news(lab_page) -> None:
    driver, _ = lab_page
    setting = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        (async () => {
          const plugin = await window.jupyterapp.serviceManager.settings
            .fetch('@jupyterlab/apputils-extension:notification');
          const user = (plugin.data || {}).user || {};
          done(user.fetchNews ?? plugin.schema.properties.fetchNews.default);
        })().catch(e => done('error: ' + e));""")
    assert setting == "false"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_in_jupyterlab_leaves_the_notebook_unmodified(
        lab_page, path: Path) -> None:
    stored = json.loads(path.read_text())["metadata"]["language_info"]
    if stored.get("version") != platform.python_version():
        pytest.skip(f"the notebooks were stored by Python {stored.get('version')}"
                    f" and this kernel is {platform.python_version()}: "
                    "JupyterLab rewrites language_info.version on opening")
    driver, root = lab_page
    before = (root / path.name).read_bytes()
    state = driver.execute_async_script(_OPEN_AND_SETTLE, path.name)
    assert "error" not in state and state["settled"], state
    assert state["kernelspec"] == _installed_kernelspec()
    assert state["dirty"] is False, state
    assert (root / path.name).read_bytes() == before
