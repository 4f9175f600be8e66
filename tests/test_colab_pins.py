"""The live explorer under Colab's own pins: ipywidgets 7.7.1 and plotly 5.24.1.

A separate virtual environment holds the pinned packages; a .pth file placed after its own
site-packages lends it torch, transformers and the rest from the main environment, so the
pinned versions win wherever both exist.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COLAB_PINS = ["ipywidgets==7.7.1", "plotly==5.24.1", "ipykernel<7"]
VENV = ROOT / "_build" / "colab-venv"


@pytest.fixture(scope="session")
def colab_python() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".pins"
    if not stamp.is_file() or stamp.read_text() != " ".join(COLAB_PINS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *COLAB_PINS], check=True)
        stamp.write_text(" ".join(COLAB_PINS))
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    main = [p for p in sys.path if p.endswith("site-packages")][0]
    # "zz" sorts last, so these paths come after the pinned packages.
    (Path(own) / "zz-attnlab-main-venv.pth").write_text(f"{main}\n{ROOT}\n")
    return python


def test_live_explorer_updates_under_colab_pins(colab_python):
    result = subprocess.run([str(colab_python), str(ROOT / "tests" / "colab_pins_check.py")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "ipywidgets 7.7.1 plotly 5.24.1" in result.stdout
    assert "live explorer OK under Colab pins" in result.stdout


LABS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("lab", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_under_colab_pins(colab_python, lab, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    subprocess.run([str(colab_python), "-m", "ipykernel", "install", "--prefix", str(VENV), "--name", "colab-pins",
                    "--display-name", "Python 3 (Colab pins)"], check=True, capture_output=True)
    monkeypatch.setenv("JUPYTER_PATH", str(VENV / "share" / "jupyter"))
    monkeypatch.delenv("ATTNLAB_BOOK_BUILD", raising=False)
    nb = nbformat.read(lab, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import ipywidgets, plotly\nprint('pins:', ipywidgets.__version__, plotly.__version__)"))
    NotebookClient(nb, timeout=60, kernel_name="colab-pins", resources={"metadata": {"path": str(lab.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "pins: 7.7.1 5.24.1" in nb.cells[-1].outputs[0]["text"]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "ready: running on" in printed
