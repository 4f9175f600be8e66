"""Every lab, run as a learner runs it: a fresh kernel, top to bottom, outside the book build."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from attnlab import render
from tests.conftest import ROOT

LABS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def run_lab(path):
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.pop(render.BOOK_BUILD_ENV, None)  # the live path, not the book's
    try:
        NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_before is not None:
            os.environ[render.BOOK_BUILD_ENV] = env_before
    return nb


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_top_to_bottom(path):
    nb = run_lab(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert "ready: running on" in "".join(o.get("text", "") for o in nb.cells[2].outputs)


def test_lab_outputs_are_stripped_in_git():
    for path in LABS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), path.name


def test_welcome_lab_explorer_draws_a_live_figure():
    nb = run_lab(ROOT / "notebooks" / "00-welcome-lab.ipynb")
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [o for s in states.values() if s["model_name"] == "OutputModel" for o in s["state"]["outputs"]]
    figures = [o["data"] for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "the live explorer drew no Plotly figure into its Output"
    sliders = [s["state"] for s in states.values() if s["model_name"] == "FloatSliderModel"]
    assert sliders and not sliders[0]["disabled"]
