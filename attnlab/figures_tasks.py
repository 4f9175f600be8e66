"""Figure builders for chapter 12: a confusion matrix, scores compared as bars, model sizes, passages in 2-D.

Pure functions from results to a Plotly figure, following :mod:`attnlab.figures`: titles below the mode
bar's band, a menu in a row of its own, legends below, alt text in ``layout.meta``, Okabe–Ito colours
and the Blues scale, values rounded so that the page stays light.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS, escape_labels


def _alt(alt: str) -> str:
    if not isinstance(alt, str) or len(alt) <= 20:
        raise InputError("give alt text of more than 20 characters that says what the figure shows.")
    return alt


def confusion_chart(tables: Mapping[str, np.ndarray], labels: Sequence[str], title: str = "Confusion matrix") -> go.Figure:
    """One confusion matrix per method (rows = true class, columns = predicted), a menu picking the method."""
    if not tables:
        raise InputError("give at least one table: {'MiniLM': [[...], ...]}.")
    labels = escape_labels(list(labels))
    names = list(tables)
    fig = go.Figure()
    top = max(float(np.max(t)) for t in tables.values())
    for index, name in enumerate(names):
        table = np.asarray(tables[name], dtype=int)
        if table.shape != (len(labels), len(labels)):
            raise InputError(f"table {name!r} has shape {table.shape}; give one row and column per label.")
        fig.add_trace(go.Heatmap(
            z=table[::-1].tolist(), x=labels, y=labels[::-1], colorscale="Blues", zmin=0, zmax=top,
            text=table[::-1].tolist(), texttemplate="%{text}", showscale=False, visible=index == 0, name=html.escape(name),
            hovertemplate="true %{y}, predicted %{x}: %{z} passages<extra></extra>"))
    headings = [f"{title} · {name}" for name in names]
    lines = title_lines(*headings)
    height, row, annotations, menus = 400, 0, [], []
    if len(names) > 1:
        buttons = [{"label": html.escape(name), "method": "update",
                    "args": [{"visible": [i == index for i in range(len(names))]}, {"title.text": wrap(headings[index])}]}
                   for index, name in enumerate(names)]
        menu, annotations, row = menu_row({"buttons": buttons, "type": "buttons", "direction": "right",
                                           "showactive": True}, None, 8)
        menus = [menu]
    fig.update_xaxes(title_text="predicted", side="bottom")
    fig.update_yaxes(title_text="true")
    fig.update_layout(title=title_layout(headings[0], height, lines), height=height, updatemenus=menus,
                      annotations=annotations, margin={"t": title_space(lines) + row + 8, "l": 10, "r": 10, "b": 10},
                      meta={"alt": _alt(f"Confusion matrices of the genre classifier ({', '.join(names)}, one at a "
                                        "time): rows are the true genre, columns the predicted one, each cell the "
                                        "number of held-out passages.")})
    return fig


def score_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], title: str, y_title: str, alt: str,
               lines: Mapping[str, float] | None = None, y_max: float | None = 1.0) -> go.Figure:
    """Grouped bars, one colour per series; ``lines`` are grey reference levels (chance, majority): one number
    drawn across every group, or one level per group (None where it does not apply), drawn over that group only."""
    groups = [wrap(str(g), 12) for g in groups]                  # escaped; long labels on two lines for a phone
    fig = go.Figure()
    for index, (name, values) in enumerate(series.items()):
        if len(values) != len(groups):
            raise InputError(f"series {name!r} has {len(values)} values for {len(groups)} groups.")
        fig.add_trace(go.Bar(x=groups, y=[round(float(v), 3) for v in values], name=html.escape(name),
                             marker_color=HEAD_COLOURS[index % 6],
                             hovertemplate=f"%{{x}}: %{{y:.3f}}<extra>{html.escape(name)}</extra>"))
    for index, (name, level) in enumerate((lines or {}).items()):
        colour = "#999999" if index == 0 else "#555555"
        hover = f"{html.escape(name)}: %{{y:.3f}}<extra></extra>"
        if np.ndim(level) == 0:                                 # one level across every group
            fig.add_trace(go.Scatter(x=groups, y=[round(float(level), 3)] * len(groups), mode="lines",
                                     name=html.escape(name), hovertemplate=hover,
                                     line={"color": colour, "dash": "dash" if index == 0 else "dot"}))
            continue
        if len(level) != len(groups):
            raise InputError(f"line {name!r} has {len(level)} levels for {len(groups)} groups (None: not drawn).")
        fig.add_trace(go.Scatter(x=groups, y=[None if v is None else round(float(v), 3) for v in level],
                                 mode="markers", name=html.escape(name), hovertemplate=hover,   # only over its group
                                 marker={"symbol": "line-ew-open", "size": 44, "color": colour,
                                         "line": {"width": 3, "color": colour}}))
    height = 400
    fig.update_yaxes(title_text=wrap(y_title, 30), range=[0, y_max] if y_max else None, gridcolor="#e5e5e5")
    fig.update_layout(title=title_layout(title, height), height=height, barmode="group", plot_bgcolor="white",
                      legend=LEGEND_BELOW, margin={"t": title_space(title_lines(title)) + 4, "l": 10, "r": 10, "b": 10},
                      meta={"alt": _alt(alt)})
    return fig


def size_chart(names: Sequence[str], bytes_by_dtype: Mapping[str, Sequence[float]], limit: float, limit_name: str,
               title: str = "Memory for the weights alone") -> go.Figure:
    """Weight memory per model and number format (log scale, GiB), with a dashed line for one GPU's memory."""
    names = [html.escape(n) for n in names]
    fig = go.Figure()
    for index, (dtype, values) in enumerate(bytes_by_dtype.items()):
        fig.add_trace(go.Bar(y=names, x=[float(f"{v / 2**30:.4g}") for v in values], orientation="h",
                             name=html.escape(dtype), marker_color=HEAD_COLOURS[index % 6],
                             hovertemplate=f"%{{y}}: %{{x:.3g}} GiB<extra>{html.escape(dtype)}</extra>"))
    fig.add_trace(go.Scatter(x=[limit / 2**30] * 2, y=[names[0], names[-1]], mode="lines", name=html.escape(limit_name),
                             line={"color": "#999999", "dash": "dash"}, hoverinfo="skip"))
    height = 120 + 44 * len(names)
    fig.update_xaxes(type="log", title_text="GiB (log scale)", dtick=1, gridcolor="#e5e5e5")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(title=title_layout(title, height), height=height, barmode="group", plot_bgcolor="white",
                      legend=LEGEND_BELOW, margin={"t": title_space(title_lines(title)) + 4, "l": 10, "r": 10, "b": 10},
                      meta={"alt": _alt(f"Horizontal bars, log scale: the memory each model's weights need in "
                                        f"{', '.join(bytes_by_dtype)}, with a dashed line at {limit_name}.")})
    return fig


def passage_scatter(points: np.ndarray, groups: Sequence[str], names: Sequence[str], explained: Sequence[float],
                    title: str = "Passages, projected to 2-D") -> go.Figure:
    """Points (N, 2) coloured by group; the hover names each point's play (never its text)."""
    points = np.round(np.asarray(points, dtype=float), 3)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(groups) or len(groups) != len(names):
        raise InputError("give points (N, 2), and one group and one name per point.")
    fig = go.Figure()
    for index, group in enumerate(dict.fromkeys(groups)):
        chosen = [i for i, g in enumerate(groups) if g == group]
        fig.add_trace(go.Scatter(
            x=points[chosen, 0].tolist(), y=points[chosen, 1].tolist(), mode="markers", name=html.escape(str(group)),
            marker={"color": HEAD_COLOURS[index % 8], "size": 7, "opacity": 0.8,
                    "symbol": ["circle", "square", "diamond", "x"][index % 4]},
            text=[html.escape(str(names[i])) for i in chosen], hovertemplate="%{text}<extra>" + html.escape(str(group)) + "</extra>"))
    height = 460
    fig.update_xaxes(title_text=f"direction 1 ({explained[0]:.0%} of the variance)", showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text=f"direction 2 ({explained[1]:.0%})", showticklabels=False, zeroline=False)
    fig.update_layout(title=title_layout(title, height), height=height, plot_bgcolor="white", legend=LEGEND_BELOW,
                      margin={"t": title_space(title_lines(title)) + 4, "l": 10, "r": 10, "b": 10},
                      meta={"alt": _alt("Scatter of the passages' MiniLM vectors projected to their two main "
                                        "directions, one colour and marker per genre; hover names the play.")})
    return fig
