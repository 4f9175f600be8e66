"""The live explorer in a real JupyterLab on 127.0.0.1, used through the browser as a learner would."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import numpy as np
import pytest

from attnlab.extraction import attend

pytestmark = pytest.mark.browser
TOKEN = "attnlab-test"
FIRST = "The cat sat on the mat because it was tired."
SECOND = "Transformers read every word at once."
READ = """() => { const plots = document.querySelectorAll('.jp-OutputArea .js-plotly-plot');
  const gd = plots[plots.length - 1];
  return gd ? {title: gd.layout.title.text, z: gd._fullData[0].z.map(r => Array.from(r)),
               ticks: gd._fullLayout.xaxis.ticktext} : null; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    cell = f'from attnlab.live import explore\nexplorer = explore("minilm", text={FIRST!r})'
    nbformat.write(nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, cells=[nbformat.v4.new_code_cell(cell)]), folder / "explore.ipynb")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={folder}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True",
         "--LabApp.extension_manager=readonly", "--ServerApp.allow_root=True"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start")
    yield base
    server.terminate()
    server.wait(timeout=20)


def _wait_for_figure(page, predicate: str, timeout: int = 60_000) -> dict:
    page.wait_for_function(f"() => {{ const f = ({READ})(); return f && ({predicate}); }}", timeout=timeout)
    return page.evaluate(READ)


def test_live_explorer_in_jupyterlab(browser, jupyterlab):
    from tests.conftest import PageVisit

    lab = PageVisit(browser, f"{jupyterlab}/lab/tree/explore.ipynb?token={TOKEN}")
    page = lab.page
    try:
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=60_000)
        page.wait_for_timeout(2000)  # let the kernel session attach
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")
        first = _wait_for_figure(page, "f.title.includes('layer 0, head 0')", timeout=120_000)
        np.testing.assert_allclose(first["z"], attend(FIRST, "minilm").head(0, 0), atol=1e-6)

        # The layer slider's number is editable: type a new layer as a learner can.
        layer = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="Layer"))
        readout = layer.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("3")
        page.keyboard.press("Enter")
        moved = _wait_for_figure(page, "f.title.includes('layer 3, head 0')")
        np.testing.assert_allclose(moved["z"], attend(FIRST, "minilm").head(3, 0), atol=1e-6)

        text = page.locator(".widget-textarea textarea")
        text.fill(SECOND)
        text.press("Tab")  # the text box sends its value when it loses focus
        changed = _wait_for_figure(page, "f.ticks.includes('transformers')")
        np.testing.assert_allclose(changed["z"], attend(SECOND, "minilm").head(3, 0), atol=1e-6)
        lab.screenshot("jupyterlab-explorer.png")
        assert lab.blocked == [], f"requests left 127.0.0.1: {lab.blocked}"
    finally:
        page.close()
