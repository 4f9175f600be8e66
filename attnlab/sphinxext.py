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
import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

from attnlab import render, widgets
from attnlab.labs import Repository

PLOTLY_JS = "vendor/plotly.min.js"  # the full bundle, from the installed plotly package
PLOTLY_SMALL_JS = "vendor/plotly-attnlab.min.js"  # a quarter of the size: built by tools/plotly-bundle.js
# Trace types in that bundle (keep in step with tools/plotly-bundle.js).
SMALL_BUNDLE_TRACES = {"scatter", "bar", "heatmap"}
PLOTLY_SMALL_BUILT = ".attnlab/plotly-attnlab.min.js"  # where `make` writes it, inside node_modules
STATIC = Path(__file__).parent / "static"
# (folder inside node_modules, folder under _static/vendor, what to leave out)
NPM_ASSETS = [
    ("mathjax/es5", "mathjax", ()),
    ("@jupyter-widgets/html-manager/dist", "html-manager", ("*.map", "*.d.ts")),
    # The slide decks of the workshop kit (attnlab.workshop.slides): reveal.js and its speaker notes.
    ("reveal.js/dist", "reveal.js/dist", ("*.map", "*.esm.js")),
    ("reveal.js/plugin/notes", "reveal.js/plugin/notes", ("*.esm.js",)),
]
# onnxruntime-web's WebAssembly-only build: the loader, its module and the (SIMD, threaded) runtime.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
BROWSER_MODELS = ("minilm", "minigpt")  # under _static/models/NAME/: model.onnx and its tokenizer, for attnlab-browser-model.js
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TOKENIZERS_JS = "@huggingface/tokenizers/dist/tokenizers.min.mjs"  # runs tokenizer.json in the browser
_TRACES = re.compile(r'data-attnlab-traces="([^"]*)"')


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
    """``{lab}`NN-name``` → a link that opens notebooks/NN-name.ipynb in Colab.

    ``{lab}`lab 1 <NN-name>``` gives the link its own words.
    """
    app = inliner.document.settings.env.app
    titled = re.fullmatch(r"\s*(.+?)\s*<([^<>]+)>\s*", text)
    title, notebook = (titled.group(1), titled.group(2)) if titled else ("Open the lab in Colab", text)
    notebook = notebook.strip().removesuffix(".ipynb")
    url = _repository(app).colab_url(f"notebooks/{notebook}.ipynb")
    link = nodes.reference(rawtext, f"▶ {title}", refuri=url, classes=["attnlab-colab"])
    return [link], []


def _dropped(asset, shows_widgets: bool = True) -> bool:
    """Assets the site does without: sphinx-thebe's (it names a CDN) and, on a page that shows
    no widget, the widget manager (~0.6 MB) and the widgets' saved state."""
    attributes = getattr(asset, "attributes", {})
    text = f"{getattr(asset, 'filename', asset) or ''} {attributes.get('body', '')}".lower()
    widget_code = "html-manager" in text or attributes.get("type") == "application/vnd.jupyter.widget-state+json"
    return "thebe" in text or (widget_code and not shows_widgets)


def plotly_bundle_for(body: str) -> str | None:
    """Which plotly.js this page needs: none, the course's small bundle, or the full one."""
    if not any(marker in body for marker in ("plotly-graph-div", "data-attnlab-traces", "attnlab-explorer")):
        return None
    types = {t for found in _TRACES.findall(body) for t in found.split()}
    untagged = body.count("plotly-graph-div") > body.count('class="attnlab-figure"')
    return PLOTLY_SMALL_JS if types <= SMALL_BUNDLE_TRACES and not untagged else PLOTLY_JS


def _on_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # Called per page: js files added here go on this page only.
    body = context.get("body", "")
    bundle = plotly_bundle_for(body)
    if bundle:
        app.add_js_file(bundle, priority=400)
        app.add_js_file("attnlab-figures.js", priority=405, defer="defer")  # figures follow light / dark
    if "attnlab-explorer" in body:
        app.add_js_file("attnlab-browser-model.js", priority=409, defer="defer")  # fetches nothing until used
        app.add_js_file("attnlab-explorer.js", priority=410, defer="defer")  # after it: offers typing where it can
    # Live explorers show a text snapshot on the site (attnlab.widgets.show_frozen); their widgets
    # still exist in the kernel, so the page has widget state but no widget to draw.
    shows_widgets = "widget-view+json" in body
    if shows_widgets:
        # After MathJax (priority 500), before the widgets are drawn on page load.
        app.add_js_file("mathjax-widgets-shim.js", priority=510, defer="defer")
    # Jupyter Book always loads sphinx-thebe, whose script names a CDN (unpkg); live code on the
    # page is off in this book (the labs run in Colab).
    for key in ("script_files", "css_files"):
        if key in context:
            context[key][:] = [asset for asset in context[key] if not _dropped(asset, shows_widgets)]  # in place: Sphinx keeps this list


def copy_vendor(node_modules: Path, target: Path) -> None:
    """Copy plotly.js, MathJax and the widget manager into ``target`` (``_static/vendor``)."""
    import plotly

    from plotly.offline import get_plotlyjs_version

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", target / "plotly.min.js")
    small = node_modules / PLOTLY_SMALL_BUILT
    wanted = get_plotlyjs_version()
    header = small.read_text(encoding="utf-8")[:200] if small.is_file() else ""
    if f"v{wanted} " not in header:
        raise ExtensionError(f"{small} must be plotly.js {wanted}, the plotly.js of the installed plotly package: "
                             "set plotly.js to that version in package.json, then `make book` rebuilds it.")
    shutil.copy2(small, target / Path(PLOTLY_SMALL_JS).name)
    for source, name, leave_out in NPM_ASSETS:
        folder = node_modules / source
        if not folder.is_dir():
            raise ExtensionError(
                f"{folder} is missing: run `npm ci` in the repository (`make book` does it)"
            )
        shutil.copytree(folder, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*leave_out))
    ort = node_modules / "onnxruntime-web" / "dist"
    (target / "ort").mkdir(exist_ok=True)
    for name in ORT_FILES:
        if not (ort / name).is_file():
            raise ExtensionError(f"{ort / name} is missing: run `npm ci` in the repository (`make book` does it)")
        shutil.copy2(ort / name, target / "ort" / name)
    tokenizers = node_modules / TOKENIZERS_JS
    if not tokenizers.is_file():
        raise ExtensionError(f"{tokenizers} is missing: run `npm ci` in the repository (`make book` does it)")
    shutil.copy2(tokenizers, target / "tokenizers.min.mjs")


def write_browser_models(cache: Path, target: Path) -> None:
    """Export the in-browser models as ONNX once (kept in ``cache`` between builds) and copy them to ``target``.

    Each gets model.onnx (its attention maps) and its tokenizer files; a GPT also gets step.onnx
    (writing, with a key/value cache) and its config.json (the cache's shape).
    """
    from attnlab import onnx_export
    from attnlab.models import load, registered_folder

    for name in BROWSER_MODELS:
        folder, kept = registered_folder(name), cache / name
        # A new exporter or new weights (a retrained mini-GPT) mean new files.
        sources = [Path(onnx_export.__file__), *folder.glob("*.safetensors")]
        done = kept / "done"
        if not done.is_file() or done.stat().st_mtime < max(source.stat().st_mtime for source in sources):
            shutil.rmtree(kept, ignore_errors=True)
            lm = load(name, device="cpu")  # once per export, not once per build
            onnx_export.export(lm, kept / "model.onnx")
            lm.tokenizer.save_pretrained(kept)  # the tokenizer the Python side uses, as files
            if lm.causal:
                from attnlab.minigpt import gpt_from_loaded

                onnx_export.export_step(gpt_from_loaded(lm), kept / "step.onnx")
                shutil.copy2(folder / "config.json", kept / "config.json")
            done.touch()
        (target / name).mkdir(parents=True, exist_ok=True)
        for file in ("model.onnx", "step.onnx", "config.json", *TOKENIZER_FILES):
            if (kept / file).is_file():
                shutil.copy2(kept / file, target / name / file)


# The theme's icon variables hold the glyph itself, or its escape: --pst-icon-lightbulb:"\f0eb".
_THEME_ICON = re.compile('--pst-icon-[\\w-]+:\\s*"(\\\\[0-9a-f]{4}|[\ue000-\uf8ff])"')
# FontAwesome 6.5 writes .fa-bars:before{content:"\f0c9"}; 6.7 writes .fa-bars{--fa:"\f0c9"}.
_ICON_RULE = re.compile(r'((?:\.fa-[a-z0-9-]+(?::before)?,?)+)\{(?:--fa|content):"\\([0-9a-f]+)"')


def subset_icon_fonts(fontawesome: Path, site: Path) -> None:
    """Cut FontAwesome's webfonts (the theme's copy) down to the icons the built pages use (~280 kB → a few kB)."""
    from fontTools import subset

    codepoints = {}
    for selectors, code in _ICON_RULE.findall((fontawesome / "css" / "all.min.css").read_text(encoding="utf-8")):
        for name in selectors.split(","):
            codepoints[name.lstrip(".").removesuffix(":before")] = int(code, 16)
    used = {name for page in site.rglob("*.html") for name in re.findall(r"\bfa-[a-z0-9-]+", page.read_text(encoding="utf-8"))}
    wanted = {codepoints[name] for name in used if name in codepoints}
    # The theme also draws icons from its stylesheets (admonition icons: content: "\f0eb").
    for sheet in (site / "_static").rglob("*.css"):
        if "fontawesome" not in sheet.parts:
            for glyph in _THEME_ICON.findall(sheet.read_text(encoding="utf-8")):
                wanted.add(int(glyph[1:], 16) if glyph.startswith("\\") else ord(glyph))
    wanted = sorted(wanted)
    options = subset.Options()
    options.flavor = "woff2"
    for font_file in (fontawesome / "webfonts").glob("*.woff2"):
        font = subset.load_font(str(font_file), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=wanted)
        subsetter.subset(font)
        subset.save_font(font, str(font_file), options)


def _on_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        # Sphinx keeps an existing copy of a static file on an incremental build; ours change often.
        for source in STATIC.iterdir():
            shutil.copy2(source, static / source.name)
        copy_vendor(Path(app.confdir) / app.config.attnlab_node_modules, static / "vendor")
        write_browser_models(Path(app.outdir).parent / ".attnlab-models", static / "models")
        # The theme's template loads FontAwesome twice on every page: a 1.5 MB JS kit that swaps
        # icons for SVGs, and the same icons as CSS and webfonts. The kit is emptied rather than
        # downloaded; the CSS stays, with its fonts cut down to the icons in use.
        for fontawesome in static.glob("vendor/fontawesome/*/"):
            kit = fontawesome / "js" / "all.min.js"
            if kit.is_file():
                kit.write_text("/* attnlab: icons come from ../css/all.min.css and its webfonts */\n", encoding="utf-8")
            subset_icon_fonts(fontawesome, Path(app.outdir))


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
