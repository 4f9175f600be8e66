"""Sphinx extension for the attnlab book: a site that works with no CDN and no kernel.

- Tells kernels started by the build that they run inside it (see :mod:`attnlab.render`).
- Serves plotly.js (from the installed plotly package), MathJax and the ipywidgets embed
  manager (from ``node_modules``, installed by ``npm ci``) under ``_static/vendor/``.
  They live outside the book's ``_static`` folder on purpose: Jupyter Book injects every
  ``.js``/``.css`` found there into every page.
- Adds plotly.js only to pages that contain a Plotly figure.
- Provides the ``{lab}`` role: ``{lab}`00-welcome-lab``` links to that lab in Colab.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

from attnlab import render, widgets
from attnlab.labs import Repository

PLOTLY_JS = "vendor/plotly.min.js"
STATIC = Path(__file__).parent / "static"
# (folder inside node_modules, folder under _static/vendor, what to leave out)
NPM_ASSETS = [
    ("mathjax/es5", "mathjax", ()),
    ("@jupyter-widgets/html-manager/dist", "html-manager", ("*.map", "*.d.ts")),
]


def _repository(app: Sphinx) -> Repository:
    options = app.config.html_theme_options
    branch = options.get("repository_branch", "main")
    return Repository(url=options["repository_url"], branch=branch, install_ref=branch)


def _on_config(app: Sphinx, config) -> None:
    # Kernels started by myst-nb inherit this process's environment.
    os.environ[render.BOOK_BUILD_ENV] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the book is built offline: models come from packages
    os.environ[widgets.COLAB_PREFIX_ENV] = _repository(app).colab_url("notebooks/")
    config.html_static_path.append(str(STATIC))


def _lab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{lab}`NN-name``` → a link that opens notebooks/NN-name.ipynb in Colab."""
    app = inliner.document.settings.env.app
    notebook = text.strip().removesuffix(".ipynb")
    url = _repository(app).colab_url(f"notebooks/{notebook}.ipynb")
    link = nodes.reference(rawtext, "▶ Open the lab in Colab", refuri=url, classes=["attnlab-colab"])
    return [link], []


def _is_thebe(asset) -> bool:
    text = f"{getattr(asset, 'filename', asset) or ''} {getattr(asset, 'attributes', {}).get('body', '')}"
    return "thebe" in text.lower()


def _on_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # Called per page: js files added here go on this page only.
    body = context.get("body", "")
    if "plotly-graph-div" in body:
        app.add_js_file(PLOTLY_JS, priority=400)
    if "widget-view+json" in body:
        # After MathJax (priority 500), before the widgets are drawn on page load.
        app.add_js_file("mathjax-widgets-shim.js", priority=510, defer="defer")
    # Jupyter Book always loads sphinx-thebe, whose script names a CDN (unpkg). Live code
    # on the page is off in this book (the labs run in Colab), so its files are dropped.
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def copy_vendor(node_modules: Path, target: Path) -> None:
    """Copy plotly.js, MathJax and the widget manager into ``target`` (``_static/vendor``)."""
    import plotly

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", target / "plotly.min.js")
    for source, name, leave_out in NPM_ASSETS:
        folder = node_modules / source
        if not folder.is_dir():
            raise ExtensionError(
                f"{folder} is missing: run `npm ci` in the repository (`make book` does it)"
            )
        shutil.copytree(folder, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*leave_out))


def _on_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        copy_vendor(Path(app.confdir) / app.config.attnlab_node_modules, Path(app.outdir) / "_static" / "vendor")


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.add_config_value("attnlab_node_modules", "node_modules", "env")
    app.add_config_value("attnlab_install_ref", "main", "env")
    app.connect("config-inited", _on_config)
    app.connect("html-page-context", _on_page)
    app.connect("build-finished", _on_finished)
    app.add_role("lab", _lab_role)
    app.add_css_file("attnlab.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
