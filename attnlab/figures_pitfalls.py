"""Figure builders for chapter 13: two pitfalls measured at initialisation.

Pure functions from the measurements of :mod:`attnlab.pitfalls` to Plotly figures, following
:mod:`attnlab.figures_cost`: titles below the mode bar's band, legends below, alt text in
``layout.meta``, Okabe–Ito colours, values rounded so that the page stays light.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS
from attnlab.figures_cost import SYMBOLS, _rounded, cost_chart, log_ticks  # noqa: F401 (log_ticks: tested here)


def softmax_health_chart(measured: Mapping) -> go.Figure:
    """Gradient norm reaching the scores against the head size, without and with the √d_k (log–log)."""
    try:
        dims = measured["dims"]
        series = {"without √d_k": measured["unscaled"]["grad_norm"], "with √d_k": measured["scaled"]["grad_norm"]}
    except (KeyError, TypeError):
        raise InputError("give what attnlab.pitfalls.no_sqrt_dk() returns: {'dims': [...], 'unscaled': {...}, "
                         "'scaled': {...}}.") from None
    unscaled, scaled = series["without √d_k"], series["with √d_k"]
    fig = cost_chart(dims, series, y_title="gradient norm reaching the scores", unit="",
                      title="Gradient through softmax at initialisation", x_title="head size d_k", x_name="d_k",
                      alt="Line chart: the gradient norm that reaches the attention scores through softmax, against "
                          f"the head size d_k from {dims[0]} to {dims[-1]}. Left unscaled it goes from "
                          f"{unscaled[0]:.2g} to {unscaled[-1]:.2g}; divided by the square root of d_k it goes "
                          f"from {scaled[0]:.2g} to {scaled[-1]:.2g}.")
    return fig


def gradient_by_layer_chart(norms: Mapping[str, Sequence[float]],
                            title: str = "Gradient norm per block at initialisation") -> go.Figure:
    """Gradient norm of each block's weights against its depth, one line per kind of block (post-LN, pre-LN)."""
    if not norms or not all(len(values) for values in norms.values()):
        raise InputError("give {'post-LN': [norm of block 1, ...], 'pre-LN': [...]}, one value per block.")
    fig = go.Figure()
    for index, (name, values) in enumerate(norms.items()):
        layers = list(range(1, len(values) + 1))
        fig.add_trace(go.Scatter(
            x=layers, y=_rounded(values), name=html.escape(name), mode="lines+markers",
            line={"color": HEAD_COLOURS[index % 6], "width": 2}, marker={"symbol": SYMBOLS[index % 6], "size": 8},
            hovertemplate=f"block %{{x}}: %{{y:.3g}}<extra>{html.escape(name)}</extra>"))
    height = 400
    fig.update_xaxes(title_text="block (1 = next to the input)", dtick=1 if max(map(len, norms.values())) <= 12 else 2,
                     gridcolor="#e5e5e5", automargin=True)
    fig.update_yaxes(title_text=wrap("gradient norm of the block's weights", 30), gridcolor="#e5e5e5", automargin=True)
    fig.update_layout(title=title_layout(title, height), height=height, plot_bgcolor="white", legend=LEGEND_BELOW,
                      hovermode="x unified", margin={"t": title_space(title_lines(title)) + 4, "l": 10, "r": 10,
                                                     "b": 10},
                      meta={"alt": "Line chart: the gradient norm of each Transformer block's weights at "
                                   f"initialisation against its depth, for {', '.join(norms)} blocks. Last block "
                                   "over first: " + ", ".join(f"{name} {values[-1] / values[0]:.2f}"
                                                              for name, values in norms.items()) + "."})
    return fig
