"""Figures of chapter 5, multi-head attention: pure functions from data to a Plotly figure.

They follow :mod:`attnlab.figures` and :mod:`attnlab.figure_layout`: light colours, titles
below the mode bar's band, menus in a row of their own, legends below, alt text in
``layout.meta``, only bar and heatmap traces, readable in a phone's 390 px column.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS, SEQUENTIAL, _check_attention, _check_tokens, escape_labels

GRID_COLUMNS = 3  # 3 small maps side by side still leave ~110 px each on a phone
PANEL_HEIGHT = 120
PANEL_TITLE = 16  # px above each small map for its "h3 · previous" title
AXES_NOTE = "rows: queries · columns: keys"  # the small maps hide their axes: say how to read them


def _panel_titles(n_heads: int, layer: int, labels: Mapping[tuple[int, int], str]) -> list[dict]:
    """One small title per map: the head's number, and its found pattern if it has one."""
    titles = []
    for head in range(n_heads):
        name = labels.get((layer, head), "")
        axis = "" if head == 0 else str(head + 1)
        text = f"<b>h{head} · {html.escape(name)}</b>" if name else f"h{head}"
        titles.append({"text": text, "showarrow": False, "font": {"size": 11}, "x": 0, "xanchor": "left",
                       "xref": f"x{axis} domain", "y": 1, "yanchor": "bottom", "yref": f"y{axis} domain"})
    return titles


def layer_heads_grid(
    attentions: np.ndarray,
    tokens: Sequence[str],
    labels: Mapping[tuple[int, int], str] | None = None,
    layer: int = 0,
    title: str = "Every head of one layer",
    decimals: int = 3,
) -> go.Figure:
    """All heads of one layer as small attention maps, 3 to a row, with a menu to pick the layer.

    ``attentions`` is (L, H, T, T) (``record.attentions``); ``labels`` names some heads,
    ``{(layer, head): "previous"}``. The title's second line says that rows are queries and
    columns keys; hovering a cell names its query and key.
    """
    from plotly.subplots import make_subplots

    from attnlab.validate import numeric_array

    attentions = numeric_array(attentions, "attentions", min_dims=0)
    if attentions.ndim != 4 or attentions.shape[2] != attentions.shape[3] or 0 in attentions.shape:
        raise InputError(f"attentions must be (layers, heads, tokens, tokens) with at least one of each, "
                         f"got shape {attentions.shape}: use record.attentions.")
    n_layers, n_heads, length, _ = attentions.shape
    words = _check_tokens(tokens)
    if len(words) != length:
        raise InputError(f"{len(words)} tokens given for attention over {length} tokens: give one label per token.")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
        raise InputError(f"layer {layer!r} does not exist: the attentions have layers 0–{n_layers - 1}.")
    labels = dict(labels or {})
    for layer_index in range(n_layers):
        for head in range(n_heads):
            _check_attention(attentions[layer_index, head], length, length)
    # Unique labels ("2 cat"): a word that occurs twice keeps two rows.
    names = [f"{i} {word}" for i, word in enumerate(escape_labels(words))]
    rows = -(-n_heads // GRID_COLUMNS)
    fig = make_subplots(rows=rows, cols=GRID_COLUMNS, horizontal_spacing=0.03,
                        vertical_spacing=min(0.3 / rows, 0.12))
    for head in range(n_heads):
        fig.add_trace(go.Heatmap(
            z=np.round(attentions[layer, head], decimals), x=names, y=names, zmin=0, zmax=1, colorscale=SEQUENTIAL,
            showscale=head == 0, colorbar={"title": {"text": "weight"}, "thickness": 12, "len": 0.5, "y": 0.5},
            name=f"head {head}", hovertemplate=f"head {head}<br>query %{{y}} → key %{{x}}<br>weight %{{z:.2f}}"
            "<extra></extra>",
        ), row=head // GRID_COLUMNS + 1, col=head % GRID_COLUMNS + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")

    def heading(index: int) -> str:
        return f"{title} · layer {index}\n{AXES_NOTE}"

    lines = title_lines(*(heading(index) for index in range(n_layers)))
    top = title_space(lines)
    if n_layers > 1:
        buttons = [{"label": f"layer {index}", "method": "update",
                    "args": [{"z": [np.round(attentions[index, head], decimals) for head in range(n_heads)]},
                             {"title.text": wrap(heading(index)),
                              "annotations": None}]}  # filled in below, once the menu's label is known
                   for index in range(n_layers)]
        menu, menu_labels, row = menu_row({"buttons": buttons, "direction": "down", "showactive": True,
                                           "active": int(layer)}, "Layer", PANEL_TITLE + 4)
        for index, button in enumerate(buttons):
            button["args"][1]["annotations"] = _panel_titles(n_heads, index, labels) + menu_labels
        menus = [menu]
    else:
        menus, menu_labels, row = [], [], 0
    height = top + row + PANEL_TITLE + rows * PANEL_HEIGHT + 20
    fig.update_layout(
        title=title_layout(heading(layer), height, lines), height=height, updatemenus=menus,
        annotations=_panel_titles(n_heads, layer, labels) + menu_labels,
        margin={"t": top + row + PANEL_TITLE + 4, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: {n_heads} small attention maps of one layer, {GRID_COLUMNS} to a row, each "
                     f"{length} query rows by {length} key columns, tokens in sentence order from the top "
                     f"left; a menu picks one of {n_layers} layers."},
    )
    return fig


def qkv_heatmaps(q: np.ndarray, k: np.ndarray, v: np.ndarray, tokens: Sequence[str],
                 title: str = "One head's queries, keys and values") -> go.Figure:
    """The (T, d_head) queries, keys and values of one head side by side, one row per token."""
    from plotly.subplots import make_subplots

    from attnlab.validate import numeric_array

    words = escape_labels(_check_tokens(tokens))
    arrays = [numeric_array(a, name, min_dims=2) for a, name in ((q, "q"), (k, "k"), (v, "v"))]
    for array, name in zip(arrays, "qkv"):
        if array.ndim != 2 or array.shape[0] != len(words):
            raise InputError(f"{name} must be (tokens, d_head) with one row per token ({len(words)}), "
                             f"got shape {array.shape}.")
    # One colour scale for all three, so that they compare; a few outliers saturate rather than
    # wash out the rest (hover shows every exact value).
    limit = float(np.percentile(np.abs(np.concatenate([a.ravel() for a in arrays])), 99)) or 1.0
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.03, subplot_titles=list("QKV"))
    fig.update_annotations(font={"size": 12})
    positions = list(range(len(words)))
    for col, (array, name) in enumerate(zip(arrays, "QKV"), 1):
        fig.add_trace(go.Heatmap(
            z=np.round(array, 2), y=positions, customdata=np.repeat(np.array(words, dtype=object)[:, None],
                                                                    array.shape[1], axis=1),
            colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit, showscale=col == 3,
            colorbar={"thickness": 12, "title": {"text": "value"}},
            hovertemplate=f"{name} of <b>%{{customdata}}</b>, dimension %{{x}}: %{{z:.2f}}<extra></extra>",
        ), row=1, col=col)
        fig.update_xaxes(title_text=f"{array.shape[1]} dims", nticks=3, automargin=True, row=1, col=col)
    fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=words, autorange="reversed", automargin=True,
                     row=1, col=1)
    top = title_space(title_lines(title)) + 24  # 24: the panels' titles
    height = top + 22 * len(words) + 70
    fig.update_layout(
        title=title_layout(title, height), height=height, margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: three heatmaps side by side, the queries, keys and values of one head, one row "
                     f"for each of {len(words)} tokens and one column per dimension, blue positive, red negative."},
    )
    return fig


def head_cost_chart(costs: Sequence, title: str = "Same cost, more heads") -> go.Figure:
    """For several head counts at one width: FLOPs by part (stacked), and attention weights computed.

    ``costs`` are :class:`attnlab.heads.AttentionCost` records (same ``d_model`` and ``length``).
    """
    from plotly.subplots import make_subplots

    costs = list(costs)
    if not costs:
        raise InputError("give at least one AttentionCost, e.g. [attention_cost(384, h) for h in (1, 2, 4)].")
    if len({(c.d_model, c.length) for c in costs}) != 1:
        raise InputError("compare head counts at one width and one length: every cost must have the same "
                         "d_model and length.")
    heads = [f"h = {c.n_heads}" for c in costs]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.2, subplot_titles=(
        "MFLOPs per sentence", "attention weights computed"))
    fig.update_annotations(font={"size": 12})
    for part, values, colour in (("projections W_Q, W_K, W_V, W_O", [c.projection_flops for c in costs],
                                  HEAD_COLOURS[0]),
                                 ("scores and weighted sums", [c.attention_flops for c in costs], HEAD_COLOURS[1])):
        fig.add_trace(go.Bar(x=heads, y=[v / 1e6 for v in values], name=part, marker_color=colour,
                             hovertemplate="%{x}: %{y:.1f} MFLOPs<extra>" + html.escape(part) + "</extra>"),
                      row=1, col=1)
    fig.add_trace(go.Bar(x=heads, y=[c.weights_held for c in costs], name="h × T × T weights",
                         marker_color=HEAD_COLOURS[2], showlegend=True,
                         hovertemplate="%{x}: %{y:,} weights<extra></extra>"), row=2, col=1)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(automargin=True, nticks=4)
    fig.update_xaxes(automargin=True)
    full = f"{title} (d_model\u00a0{costs[0].d_model}, T\u00a0=\u00a0{costs[0].length})"  # no break inside a pair
    top = title_space(title_lines(full)) + 24
    height = top + 420
    fig.update_layout(
        title=title_layout(full, height), height=height, legend=LEGEND_BELOW,
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: stacked bars of the FLOPs of one attention layer for {len(costs)} head counts, the "
                     "same height for each; below, bars of how many attention weights it computes, growing with h."},
    )
    return fig
