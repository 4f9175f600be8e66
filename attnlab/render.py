"""How Plotly figures reach the reader: in the built book, in Colab, and in Jupyter.

In a book build, Plotly 7 would pick its `plotly_mimetype` renderer, which myst-nb cannot
show (the figure silently vanishes), and every built-in HTML renderer either inlines
plotly.js (4.8 MB on every page) or loads it from a CDN. So while the book is built we
register a renderer that emits only a ``<div>`` and its ``Plotly.newPlot`` call; the
Sphinx extension (:mod:`attnlab.sphinxext`) serves plotly.js from the site itself, once,
on the pages that need it. Outside a build nothing is changed.
"""

from __future__ import annotations

import html
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

#: Set by the Sphinx extension while the book is built; kernels inherit it.
BOOK_BUILD_ENV = "ATTNLAB_BOOK_BUILD"
BOOK_RENDERER = "attnlab_book"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def building_book() -> bool:
    """True while this kernel executes a page of the book build."""
    return os.environ.get(BOOK_BUILD_ENV) == "1"


def in_colab() -> bool:
    """True inside Google Colab."""
    import sys

    return "google.colab" in sys.modules


class BookRenderer(MimetypeRenderer):
    """A div plus a ``Plotly.newPlot`` call; plotly.js itself is served by the site."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        """Return the figure as an HTML fragment without plotly.js."""
        fragment = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            full_html=False,
            config=PLOTLY_CONFIG,
            validate=False,
            auto_play=False,  # frames are steps of a slider, not a film to play on load
        )
        alt = (fig_dict.get("layout", {}).get("meta") or {}).get("alt", "An interactive Plotly figure")
        label = html.escape(str(alt), quote=True)
        # The trace types tell the site which plotly.js bundle this page needs.
        traces = " ".join(sorted({trace.get("type", "scatter") for trace in fig_dict.get("data", [])}))
        return {"text/html": f'<div class="attnlab-figure" role="figure" aria-label="{label}" '
                             f'data-attnlab-traces="{html.escape(traces)}">{fragment}</div>'}


def use_book_renderer_if_building() -> bool:
    """Register the book renderer and make it the default, but only inside a book build."""
    if BOOK_RENDERER not in pio.renderers:
        pio.renderers[BOOK_RENDERER] = BookRenderer()
    if not building_book():
        return False
    pio.renderers.default = BOOK_RENDERER
    return True


def standalone_html(fig, plotly_src: str) -> str:
    """HTML that loads plotly.js from ``plotly_src`` only if the page lacks it, then draws.

    Colab shows each output in its own frame; a figure shown by Plotly's own renderer
    inside an ``ipywidgets.Output`` can run before plotly.js has loaded ("Plotly is not
    defined"). Drawing only in the script's ``onload`` avoids that race.
    """
    div_id = "attnlab-" + uuid.uuid4().hex[:12]
    figure_json = pio.to_json(fig, validate=False)
    return f"""<div id="{div_id}"></div>
<script>
(function () {{
  var figure = {figure_json};
  var config = {json.dumps(PLOTLY_CONFIG)};
  function draw() {{
    Plotly.newPlot("{div_id}", {{data: figure.data, layout: figure.layout, frames: figure.frames || [], config: config}});
  }}
  if (window.Plotly) {{ draw(); return; }}
  var script = document.createElement("script");
  script.src = "{html.escape(plotly_src, quote=True)}";
  script.onload = draw;
  document.head.appendChild(script);
}})();
</script>"""


def plotly_cdn_url() -> str:
    """The CDN address of the plotly.js version that matches the installed plotly package."""
    from plotly.offline import get_plotlyjs_version

    return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"


def progress(iterable: Iterable, **options):
    """A tqdm progress bar over ``iterable``: a live bar in Jupyter and Colab.

    In a book build the page cannot animate, and tqdm's carriage returns would leave every
    intermediate state on it; there the bar is drawn once, in its final state, when the loop
    ends or the bar is closed (a loop that stops early closes it). Either way the result can be
    iterated and has tqdm's ``set_postfix`` and ``close``.
    """
    if not building_book():
        from tqdm.auto import tqdm

        return tqdm(iterable, **options)
    return _FinalStateBar(iterable, **options)


class _FinalStateBar:
    """A tqdm bar that writes nothing while it runs and prints its final state once."""

    def __init__(self, iterable: Iterable, **options):
        from tqdm.std import tqdm

        self.bar = tqdm(iterable, file=io.StringIO(), **{"ascii": False, **options})
        self.shown = not self.bar.disable

    def __iter__(self) -> Iterator:
        yield from self.bar
        self.close()

    def __len__(self) -> int:
        return len(self.bar)

    def set_postfix(self, *args, **kwargs) -> None:
        """As tqdm's."""
        self.bar.set_postfix(*args, **kwargs)

    def close(self) -> None:
        """Print the final state (once)."""
        if self.shown:
            self.shown = False
            print(self.bar)
        self.bar.close()
