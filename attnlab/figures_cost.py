"""Figure builders for chapter 11: measured costs against sequence length.

Pure functions from measurements to a Plotly figure, following :mod:`attnlab.figures`: titles
below the mode bar's band, a menu in a row of its own, legends below, alt text in
``layout.meta``, Okabe–Ito colours (a theory line dashed grey), values rounded to 4 significant
digits so that the page stays light.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS

#: A series whose name starts with this is drawn as a dashed grey line: a prediction, not a measurement.
THEORY = "theory"
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star"]


def _rounded(values: Sequence[float]) -> list[float]:
    return [float(f"{v:.4g}") for v in np.asarray(values, dtype=float)]


def _ticks(lengths: Sequence[int]) -> list[int]:
    """Lengths at least 3.5× apart: on a phone's log axis closer ones would collide."""
    ticks = [lengths[0]]
    for length in lengths[1:]:
        if length >= 3.5 * ticks[-1]:
            ticks.append(length)
    return ticks


def _traces(lengths: Sequence[int], series: Mapping[str, Sequence[float]], unit: str,
            x_name: str = "T") -> list[go.Scatter]:
    lengths = list(lengths)
    if not lengths or not series:
        raise InputError("give at least one length and one series, e.g. {'written out': [1.0, 4.0]}.")
    traces = []
    for index, (name, values) in enumerate(series.items()):
        if len(values) != len(lengths):
            raise InputError(f"series {name!r} has {len(values)} values for {len(lengths)} lengths: give one per length.")
        theory = name.startswith(THEORY)
        colour = "#999999" if theory else HEAD_COLOURS[index % 6]
        traces.append(go.Scatter(
            x=lengths, y=_rounded(values), mode="lines" if theory else "lines+markers", name=html.escape(name),
            line={"color": colour, "width": 2, "dash": "dash" if theory else "solid"},
            marker={"symbol": SYMBOLS[index % len(SYMBOLS)], "size": 8},
            hovertemplate=f"{html.escape(x_name)} = %{{x}}: %{{y:.3g}} {html.escape(unit)}<extra>{html.escape(name)}</extra>"))
    return traces


def log_ticks(values: Sequence[float], margin: float = 1.2) -> tuple[list[float], list[str], list[float]]:
    """Tick values at 1, 2 and 5 of each decade inside the data's range, their labels as plain decimals, and the
    log-axis range (padded by ``margin``) that shows them: "0.05", "0.1", "0.2", never Plotly's bare "5", "2"."""
    positive = [float(v) for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        raise InputError("a log axis needs at least one positive, finite value.")
    low, high = min(positive) / margin, max(positive) * margin
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    # The densest of 1-2-5, 1-3 or 1 per decade that gives at most 6 labels: few enough for a phone.
    for steps in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in decades for m in steps if low <= m * 10.0 ** e <= high]
        if len(ticks) <= 6:
            break
    ticks = ticks[::math.ceil(len(ticks) / 6)]
    if len(ticks) < 2:  # a range narrower than the 1–2–5 steps: label the data's two ends instead
        ticks = sorted({float(f"{min(positive):.2g}"), float(f"{max(positive):.2g}")})
    ticks = [float(f"{t:.3g}") for t in ticks]
    text = [f"{t:,.0f}" if t >= 1 and t == int(t) else np.format_float_positional(t, trim="-") for t in ticks]
    return ticks, text, [round(math.log10(low), 4), round(math.log10(high), 4)]


def _y_ticks(series: Mapping[str, Sequence[float]]) -> dict:
    """A log y-axis's ticks, labels and range for all the values of ``series``, as axis properties."""
    ticks, text, span = log_ticks([v for values in series.values() for v in np.asarray(values, dtype=float)])
    return {"tickmode": "array", "tickvals": ticks, "ticktext": text, "range": span}


def _axes(fig: go.Figure, lengths: Sequence[int], x_title: str, y_title: str,
          series: Mapping[str, Sequence[float]] | None) -> None:
    """Log x-axis over ``lengths``; a log y-axis labelled in plain decimals for ``series``, or linear if None."""
    ticks = _ticks(list(lengths))
    fig.update_xaxes(type="log", title_text=x_title, tickvals=ticks, ticktext=[str(t) for t in ticks],
                     automargin=True, gridcolor="#e5e5e5")
    fig.update_yaxes(type="linear" if series is None else "log", title_text=wrap(y_title, 30), automargin=True,
                     gridcolor="#e5e5e5", **({} if series is None else _y_ticks(series)))


def cost_chart(lengths: Sequence[int], series: Mapping[str, Sequence[float]], y_title: str, title: str,
               alt: str, unit: str = "", x_title: str = "sequence length T (tokens)", log_y: bool = True,
               x_name: str | None = None) -> go.Figure:
    """Measured costs (one line per series) against length, log–log; series named "theory…" are dashed grey.

    ``x_name`` names x in the hover text: "T" on the default axis, else the axis title.
    """
    if not isinstance(alt, str) or len(alt) <= 20:
        raise InputError("give alt text of more than 20 characters that says what the figure shows.")
    if x_name is None:
        x_name = "T" if x_title == "sequence length T (tokens)" else x_title
    fig = go.Figure(_traces(lengths, series, unit, x_name))
    _axes(fig, lengths, x_title, y_title, series if log_y else None)
    height = 420
    fig.update_layout(title=title_layout(title, height), height=height, plot_bgcolor="white", legend=LEGEND_BELOW,
                      hovermode="x unified", margin={"t": title_space(title_lines(title)) + 4, "l": 10, "r": 10,
                                                     "b": 10},
                      meta={"alt": alt})
    return fig


def cost_explorer(panels: Mapping[str, tuple], title: str = "Costs measured on this page") -> go.Figure:
    """Several measured charts in one figure, a menu picking one: ``{name: (lengths, series, y_title, unit)}``."""
    if not panels:
        raise InputError("give at least one panel: {'time': (lengths, {'written out': [...]}, 'ms', 'ms')}.")
    names = list(panels)
    fig = go.Figure()
    owners, ranges = [], []
    for index, name in enumerate(names):
        lengths, series, y_title, unit = panels[name]
        for trace in _traces(lengths, series, unit):
            trace.visible = index == 0
            fig.add_trace(trace)
            owners.append(index)
        ranges.append(_ticks(list(lengths)))
    headings = [f"{title} · {name}" for name in names]
    buttons = []
    for index, name in enumerate(names):
        y_title, y_ticks = panels[name][2], _y_ticks(panels[name][1])
        buttons.append({"label": html.escape(name), "method": "update",
                        "args": [{"visible": [owner == index for owner in owners]},
                                 {"title.text": wrap(headings[index]), "yaxis.title.text": wrap(y_title, 30),
                                  "xaxis.tickvals": ranges[index], "xaxis.ticktext": [str(t) for t in ranges[index]],
                                  **{f"yaxis.{key}": value for key, value in y_ticks.items()}}]})
    lines = title_lines(*headings)
    menu, annotations, row = menu_row({"buttons": buttons, "direction": "down", "showactive": True}, "show:", 8)
    height = 470
    first = panels[names[0]]
    _axes(fig, first[0], "sequence length T (tokens)", first[2], first[1])
    fig.update_layout(title=title_layout(headings[0], height, lines), height=height, updatemenus=[menu],
                      annotations=annotations, plot_bgcolor="white", legend=LEGEND_BELOW, hovermode="x unified",
                      margin={"t": title_space(lines) + row + 8, "l": 10, "r": 10, "b": 10},
                      meta={"alt": f"Log–log charts of costs measured on this page against sequence length, one at a "
                                   f"time from a menu ({', '.join(names)}); dashed grey lines are the theory beside "
                                   "the measurements."})
    return fig
