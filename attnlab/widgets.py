"""Live explorers: ipywidgets controls that redraw a figure from a figure builder.

Rendering path, chosen to avoid Colab's known traps: no ``go.FigureWidget`` (it does not
work in Colab) and no third-party widget (those need Colab's custom widget manager). Only
core ipywidgets (``Dropdown``, ``FloatSlider``, ``Output``, ...) are used, which exist with the
same names in ipywidgets 7.7 (Colab) and 8. The figure is drawn into an ``Output``: in Colab
as HTML that waits for plotly.js to load before drawing (see
:func:`attnlab.render.standalone_html`), elsewhere with Plotly's own renderer.

In the static book there is no kernel, so a live control would look alive and do nothing.
There the explorer says so, shows its controls disabled with a link to the lab in Colab,
and draws the figure for the controls' current values as an ordinary (still zoomable,
hoverable) Plotly figure (see :func:`show_frozen`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import HTML, display

from attnlab import render
from attnlab.errors import AttnlabError

#: Set by the Sphinx extension during a build: the Colab address prefix of the labs folder.
COLAB_PREFIX_ENV = "ATTNLAB_COLAB_PREFIX"


def _values(controls: Mapping[str, widgets.ValueWidget]) -> dict:
    return {name: control.value for name, control in controls.items()}


def show_figure(fig: go.Figure) -> None:
    """Display a figure the way the current front end can draw it."""
    if render.in_colab():
        display(HTML(render.standalone_html(fig, render.plotly_cdn_url())))
    else:
        fig.show()


def static_notice(lab: str | None) -> str:
    """HTML telling a reader of the static site that these controls need a kernel."""
    prefix = os.environ.get(COLAB_PREFIX_ENV)
    where = "open this lab in Colab or Jupyter"
    if lab and prefix:
        url = html.escape(f"{prefix}{lab}", quote=True)
        where = f'<a href="{url}">open this lab in Colab</a> (or run it in Jupyter)'
    return (
        '<div class="attnlab-static-notice" role="note"><strong>These controls are frozen '
        f"on this page:</strong> they need a running Python kernel. To use them, {where}. "
        "The figure below shows their starting values.</div>"
    )


def frozen_copy(control: widgets.Widget) -> widgets.Widget:
    """A disabled copy of a control, so later changes to the original cannot alter what a page shows."""
    state = {key: value for key, value in control.get_state().items()
             if not key.startswith("_") and key not in ("layout", "style", "children", "tabbable", "tooltip")}
    if hasattr(control, "options"):  # selection widgets keep their options in private state
        state.pop("index", None)
        state.update(options=control.options, value=control.value)
    for shared in ("style", "layout"):  # widgets of their own, which copies may share
        if hasattr(control, shared):
            state[shared] = getattr(control, shared)
    copy = type(control)(**state)
    copy.disabled = True
    return copy


def show_frozen(rows: list[list[widgets.Widget]], figure: go.Figure, lab: str | None) -> widgets.VBox:
    """On the static site: the notice, snapshots of the controls as they are now, and the figure.

    Snapshots, because a later cell may still move the live controls, and the page must show
    the values the figure was drawn with. The live controls are disabled too: no kernel answers.
    """
    for row in rows:
        for control in row:
            control.disabled = True
    snapshot = [widgets.HBox([frozen_copy(control) for control in row]) for row in rows]
    box = widgets.VBox([widgets.HTML(static_notice(lab)), *snapshot])
    display(box)
    display(figure)
    return box


def explorer(
    draw: Callable[..., go.Figure],
    controls: Mapping[str, widgets.ValueWidget],
    lab: str | None = None,
) -> widgets.Widget:
    """Show ``controls`` and a figure redrawn by ``draw(**values)`` whenever one changes.

    ``lab`` is the notebook's file name, used on the static site to link to it in Colab.
    Returns the container widget so tests and notebooks can reach the controls.
    """
    if render.building_book():
        return show_frozen([list(controls.values())], draw(**_values(controls)), lab)

    row = widgets.HBox(list(controls.values()))
    output = widgets.Output()

    def redraw(_change: object = None) -> None:
        with output:
            output.clear_output(wait=True)
            try:
                figure = draw(**_values(controls))
            except AttnlabError as error:  # bad input in a control: say so, keep the controls alive
                print(error)
                return
            show_figure(figure)

    for control in controls.values():
        control.observe(redraw, names="value")
    box = widgets.VBox([row, output])
    display(box)
    redraw()
    return box
