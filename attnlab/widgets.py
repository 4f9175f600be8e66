"""Live explorers: ipywidgets controls that redraw a figure from a figure builder.

Rendering path, chosen to avoid Colab's known traps: no ``go.FigureWidget`` (it does not
work in Colab) and no third-party widget (those need Colab's custom widget manager). Only
core ipywidgets (``Dropdown``, ``FloatSlider``, ``Output``, ...) are used, which exist with the
same names in ipywidgets 7.7 (Colab) and 8. The figure is drawn into an ``Output``: in Colab
as HTML that waits for plotly.js to load before drawing (see
:func:`attnlab.render.standalone_html`), elsewhere with Plotly's own renderer.

In the static book there is no kernel, so a live control would look alive and do nothing.
There the explorer says so, with a link to the lab in Colab, lists its controls' values as
plain text, and draws the figure for those values as an ordinary (still zoomable, hoverable)
Plotly figure (see :func:`show_frozen`).
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


def static_notice(lab: str | None, what: str = "figure") -> str:
    """HTML telling a reader of the static site that these controls need a kernel."""
    prefix = os.environ.get(COLAB_PREFIX_ENV)
    where = "open this lab in Colab or Jupyter"
    if lab and prefix:
        url = html.escape(f"{prefix}{lab}", quote=True)
        where = f'<a href="{url}">open this lab in Colab</a> (or run it in Jupyter)'
    return (
        '<div class="attnlab-static-notice" role="note"><strong>A live explorer, shown here as a '
        f"snapshot:</strong> its controls need a running Python kernel. To change them, {where}. "
        f"The {html.escape(what)} below was drawn with the values listed here.</div>"
    )


def _shown_value(control: widgets.Widget) -> tuple[str, str]:
    """A control's value as a reader would read it off the control, and what it could be."""
    value = control.value
    if hasattr(control, "options") and hasattr(control, "label") and control.label is not None:
        labels = [option[0] if isinstance(option, tuple) else option for option in control.options]
        choices = ", ".join(str(label) for label in labels[:8]) + (", …" if len(labels) > 8 else "")
        return str(control.label), f"one of {choices}" if len(labels) > 1 else ""
    if isinstance(value, bool):
        return ("on" if value else "off"), ""
    if hasattr(control, "min") and hasattr(control, "max"):
        return f"{value:g}", f"{control.min:g} to {control.max:g}"
    return str(value), ""


def frozen_html(rows: list[list[widgets.Widget]]) -> str:
    """The controls as plain HTML: each one's name and the value the figure below was drawn with.

    Plain text rather than disabled widgets: the widget manager that draws widgets without a
    kernel weighs ~0.6 MB per page, and a disabled slider still looks like something to drag.
    """
    groups = []
    for row in rows:
        for control in row:
            name = control.description or getattr(control, "placeholder", "") or "value"
            value, choices = _shown_value(control)
            extra = f' <span class="attnlab-frozen-choices">({html.escape(choices)})</span>' if choices else ""
            groups.append(f"<div><dt>{html.escape(name)}</dt><dd><span class=\"attnlab-frozen-value\">"
                          f"{html.escape(value)}</span>{extra}</dd></div>")
    return f'<dl class="attnlab-frozen-controls">{"".join(groups)}</dl>'


def show_frozen(rows: list[list[widgets.Widget]], figure: go.Figure, lab: str | None) -> HTML:
    """On the static site: the notice, the controls' values as text, and the figure they drew.

    Text, written now, because a later cell may still move the live controls and the page must
    show the values the figure was drawn with. The live controls are disabled too: no kernel answers.
    """
    for row in rows:
        for control in row:
            control.disabled = True
    snapshot = HTML(f'<div class="attnlab-frozen">{static_notice(lab)}{frozen_html(rows)}</div>')
    display(snapshot)
    display(figure)
    return snapshot


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
        show_frozen([list(controls.values())], draw(**_values(controls)), lab)
        return widgets.VBox(list(controls.values()))  # not displayed: the page shows the snapshot

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


def live_output(
    show: Callable[..., None],
    controls: Mapping[str, widgets.ValueWidget],
    lab: str | None = None,
    rows: list[list[str]] | None = None,
) -> widgets.Widget:
    """Like :func:`explorer`, for any output: ``show(**values)`` displays what it likes (text, a table).

    ``rows`` groups the controls' names into lines, e.g. ``[["prompt"], ["temperature", "top_k"]]``.
    On the static site: the kernel notice, the values as text and what ``show`` displayed for them.
    """
    rows = rows or [list(controls)]
    grouped = [[controls[name] for name in row] for row in rows]
    if render.building_book():
        for row in grouped:
            for control in row:
                control.disabled = True
        display(HTML(f'<div class="attnlab-frozen">{static_notice(lab, "output")}{frozen_html(grouped)}</div>'))
        show(**_values(controls))
        return widgets.VBox([widgets.HBox(row) for row in grouped])  # not displayed: the page shows the snapshot
    output = widgets.interactive_output(show, dict(controls))
    box = widgets.VBox([widgets.HBox(row) for row in grouped] + [output])
    display(box)
    return box

