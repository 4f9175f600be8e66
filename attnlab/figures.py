"""Figure builders: pure functions from data to a Plotly figure.

The same builders serve the static book pages and the live widgets. Token labels are
HTML-escaped (Plotly labels accept some HTML tags), and axes are numeric with tick
labels, so a word that occurs twice keeps two rows instead of being merged.

Every figure must read well from a phone's ~350 px column to a desktop's ~700 px one, at
a fixed height: titles are wrapped and sit below the band of plotly's mode bar, menus get
a row of their own under the title, legends lie horizontally below the plot, margins
grow with their tick labels (``automargin``), and values never leave their axes
(tests/test_figure_layout.py checks the built pages at three widths).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.attention import rows_sum_to_one
from attnlab.errors import InputError
from attnlab.figure_layout import (LEGEND_BELOW, MODEBAR_BAND, choice_heading, menu_row, place_labels, title_layout,
                                   title_lines, title_space, wrap)

#: Perceptually uniform and readable with the common colour-vision deficiencies.
SEQUENTIAL = "Viridis"


#: A character model's tokens can be blank: show a space and a line break as visible signs.
VISIBLE_BLANKS = {" ": "␣", "\n": "⏎", "\t": "⇥"}


def escape_labels(tokens: Sequence[str]) -> list[str]:
    """Tokens as safe label text: no tag in a sentence can become markup, no token is blank."""
    return [html.escape(VISIBLE_BLANKS.get(str(token), str(token)), quote=True) for token in tokens]


MASKED_COLOUR = "#c8c8c8"  # masked cells: grey, never confused with the dark end of Viridis (weight 0)


def _check_attention(weights: np.ndarray, n_queries: int, n_keys: int) -> np.ndarray:
    from attnlab.validate import numeric_array

    weights = numeric_array(weights, "weights")
    if weights.shape != (n_queries, n_keys):
        raise InputError(f"weights have shape {weights.shape}, but the tokens give ({n_queries}, {n_keys}): "
                         "one row per query token and one column per key token.")
    if n_queries == 0 or n_keys == 0:
        raise InputError("There is nothing to draw: give at least one token.")
    if not rows_sum_to_one(weights):
        raise InputError("each row of an attention matrix must be a distribution that sums to 1 "
                         "(did you pass scores before the softmax?)")
    return weights


def _check_tokens(tokens: object, what: str = "tokens") -> list:
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise InputError(f"{what} must be a list of token strings, such as ['the', 'cat'], "
                         f"not {type(tokens).__name__}.")
    return list(tokens)


def _heatmap_trace(weights: np.ndarray, queries: list[str], keys: list[str]) -> go.Heatmap:
    pairs = np.array([[(q, k) for k in keys] for q in queries], dtype=object)  # (T_q, T_k, 2)
    return go.Heatmap(
        z=weights,
        x=list(range(len(keys))),
        y=list(range(len(queries))),
        customdata=pairs,
        zmin=0.0,
        zmax=1.0,
        colorscale=SEQUENTIAL,
        colorbar={"title": {"text": "weight"}, "thickness": 14},
        hovertemplate="query <b>%{customdata[0]}</b> → key <b>%{customdata[1]}</b>"
        "<br>weight %{z:.3f}<extra></extra>",
    )


#: Rows of a token heatmap: 30 px each up to ROOMY_TOKENS tokens; a longer text gets smaller rows
#: (never under MIN_ROW px) so that the figure stays about LONG_TEXT_ROWS_PX tall.
ROOMY_TOKENS, MIN_ROW, LONG_TEXT_ROWS_PX = 40, 6.0, 1200
MAX_KEY_LABELS = 40  # beyond this, every k-th key is labelled (hover still names every cell)


def token_row_height(n_tokens: int) -> float:
    """px per row of a token heatmap: roomy for a sentence, bounded for a long text."""
    return 30.0 if n_tokens <= ROOMY_TOKENS else max(MIN_ROW, LONG_TEXT_ROWS_PX / n_tokens)


def _every(labels: list[str], step: int) -> tuple[list[int], list[str]]:
    positions = list(range(0, len(labels), step))
    return positions, [labels[i] for i in positions]


def _token_axes(fig: go.Figure, queries: list[str], keys: list[str], max_keys: int = MAX_KEY_LABELS) -> None:
    # Keys along the bottom: plotly tilts their labels on a phone, and the bottom margin grows
    # to fit them (automargin), where above the plot they would run into the title.
    key_step = -(-len(keys) // max_keys)  # ceil: at most max_keys labels
    query_step = int(np.ceil(14 / token_row_height(len(queries))))  # labelled rows ≥ 14 px apart
    key_ticks, key_text = _every(keys, key_step)
    query_ticks, query_text = _every(queries, query_step)
    fig.update_xaxes(title_text="key (attended to)", tickmode="array", tickvals=key_ticks, ticktext=key_text,
                     automargin=True)
    fig.update_yaxes(title_text="query (attending)", tickmode="array", tickvals=query_ticks, ticktext=query_text,
                     autorange="reversed", automargin=True)


def attention_heatmap(
    weights: np.ndarray,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    title: str = "Attention weights",
    alt: str | None = None,
    mask: np.ndarray | None = None,
    max_key_labels: int = MAX_KEY_LABELS,
) -> go.Figure:
    """Heatmap of one attention matrix: queries on rows, keys on columns, exact weight on hover.

    ``mask`` (True = may attend) greys out the cells a query may not see, so that "masked"
    never looks like "weight 0". ``max_key_labels``: label at most this many keys (every k-th
    one; hover still names every cell), fewer for many short tokens on a phone.
    """
    queries = escape_labels(_check_tokens(query_tokens, "query_tokens"))
    keys = escape_labels(_check_tokens(query_tokens if key_tokens is None else key_tokens, "key_tokens"))
    weights = _check_attention(weights, len(queries), len(keys))
    trace = _heatmap_trace(weights, queries, keys)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != weights.shape:
            raise InputError(f"mask must be booleans of the weights' shape {weights.shape} (True = may attend), "
                             f"got {mask.dtype} of shape {mask.shape}.")
        if np.any(weights[~mask] > 1e-6):
            raise InputError("a masked cell has a non-zero weight: the mask does not match these weights")
        trace.z = np.where(mask, weights, np.nan)
        trace.hovertemplate = trace.hovertemplate.replace("weight %{z:.3f}", "weight %{z:.3f} (grey: masked)")
    fig = go.Figure(trace)
    _token_axes(fig, queries, keys, max_key_labels)
    if mask is not None:
        fig.update_layout(plot_bgcolor=MASKED_COLOUR)
    top = title_space(title_lines(title))
    # 110: the keys' labels and title below, tilted on a phone
    height = top + int(token_row_height(len(queries)) * len(queries)) + 110
    fig.update_layout(
        title=title_layout(title, height),
        height=height,
        margin={"t": top + 8, "l": 10, "r": 10, "b": 10},
        meta={"alt": alt or f"{title}: a heatmap of {len(queries)} query rows by {len(keys)} key columns"},
    )
    return fig


def attention_heatmap_choices(
    choices: Mapping[str, np.ndarray],
    tokens: Sequence[str],
    title: str,
    menu_label: str,
    alt: str | None = None,
) -> go.Figure:
    """Heatmap with a dropdown that switches between several attention matrices of one sentence."""
    if not choices:
        raise ValueError("give at least one attention matrix to choose from")
    names = list(choices)
    first = names[0]
    fig = attention_heatmap(choices[first], tokens, title=f"{title} · {first}", alt=alt)
    buttons = [
        {
            "label": html.escape(name),
            "method": "update",
            # plotly.js 3+ ignores a plain-string "title" here: it must be "title.text".
            "args": [
                {"z": [_check_attention(choices[name], len(tokens), len(tokens))]},
                {"title.text": wrap(choice_heading(title, name))},
            ],
        }
        for name in names
    ]
    # The menu in a row of its own between the title and the plot: it covers nothing but the
    # plot, and only while it is open.
    lines = title_lines(*(choice_heading(title, name) for name in names))
    top = title_space(lines)
    menu, annotations, row = menu_row({"buttons": buttons, "direction": "down", "showactive": True}, menu_label, 10)
    height = fig.layout.height - fig.layout.margin.t + top + row + 10
    fig.update_layout(updatemenus=[menu], annotations=annotations, height=height, margin={"t": top + row + 10},
                      title=title_layout(choice_heading(title, first), height, lines))
    return fig


# ------------------------------------------------------------------ head view


#: Okabe–Ito, with grey for its black (which vanishes on a dark page): distinguishable with the common
#: colour-vision deficiencies.
HEAD_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]


def head_view(
    attention: np.ndarray,
    tokens: Sequence[str],
    heads: Sequence[int] | None = None,
    threshold: float = 0.02,
    title: str = "Head view",
) -> go.Figure:
    """Tokens in two columns, a line from each query (left) to each key (right) per head.

    ``attention`` is (H, T, T); a line's opacity follows its weight. Clicking a legend entry
    hides or shows a head; hovering a line names its query, key, head and weight.
    """
    from attnlab.validate import numeric_array

    attention = numeric_array(attention, "attention", min_dims=0)
    if attention.ndim != 3 or attention.shape[1] != attention.shape[2] or 0 in attention.shape:
        raise InputError(f"attention must be (heads, tokens, tokens) with at least one of each, got {attention.shape}: "
                         "for one layer of a record use record.attentions[layer].")
    n_heads, length, _ = attention.shape
    labels = escape_labels(_check_tokens(tokens))
    if len(labels) != length:
        raise InputError(f"{len(labels)} tokens given for attention over {length} tokens: give one label per token.")
    heads = list(range(n_heads)) if heads is None else list(heads)
    for head in heads:
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < n_heads:
            raise InputError(f"head {head!r} does not exist: the attention has heads 0–{n_heads - 1}.")
    fig = go.Figure()
    for colour_index, head in enumerate(heads):
        colour = HEAD_COLOURS[colour_index % len(HEAD_COLOURS)]
        _check_attention(attention[head], length, length)
        first = True
        for query in range(length):
            for key in range(length):
                weight = attention[head, query, key]
                if weight < threshold:
                    continue
                fig.add_trace(go.Scatter(
                    x=[0, 1], y=[query, key], mode="lines", line={"color": colour, "width": 1 + 3 * weight},
                    opacity=float(min(1.0, 0.15 + weight)), legendgroup=f"head {head}", showlegend=first,
                    name=f"head {head}", hovertemplate=f"head {head}: {labels[query]} → {labels[key]}"
                    f"<br>weight {weight:.3f}<extra></extra>",
                ))
                first = False
    # Queries written leftwards from their line ends, keys rightwards: clear of the lines.
    for side, x, anchor in (("queries", -0.02, "left"), ("keys", 1.02, "right")):
        fig.add_trace(go.Scatter(
            x=[x] * length, y=list(range(length)), mode="text", text=labels, textposition=f"middle {anchor}",
            hoverinfo="skip", showlegend=False, name=side, cliponaxis=False,
        ))
    fig.update_xaxes(visible=False, range=[-0.45, 1.45])
    fig.update_yaxes(visible=False, autorange="reversed")
    top = title_space(title_lines(title))
    height = top + 26 * length + 70  # 70: the legend below
    fig.update_layout(
        title=title_layout(title, height), height=height, plot_bgcolor="white",
        legend={**LEGEND_BELOW, "title": {"text": "click to hide"}}, margin={"l": 10, "r": 10, "t": top, "b": 10},
        meta={"alt": f"{title}: lines from each of {length} tokens on the left to the tokens it attends to on the right"},
    )
    return fig


# ------------------------------------------------------------------ model view


def model_view(
    attentions: np.ndarray,
    labels: Mapping[tuple[int, int], str] | None = None,
    title: str = "Every head at a glance",
) -> go.Figure:
    """A layers × heads grid of small attention maps (attentions: (L, H, T, T)); named patterns labelled."""
    from plotly.subplots import make_subplots

    from attnlab.validate import numeric_array

    attentions = numeric_array(attentions, "attentions", min_dims=0)
    if attentions.ndim != 4 or attentions.shape[2] != attentions.shape[3] or 0 in attentions.shape:
        raise InputError(f"attentions must be (layers, heads, tokens, tokens) with at least one of each, "
                         f"got shape {attentions.shape}: use record.attentions.")
    n_layers, n_heads, length, _ = attentions.shape
    labels = labels or {}
    if not isinstance(labels, Mapping):
        raise InputError(f"labels must be a dict {{(layer, head): name}}, not {type(labels).__name__}.")
    for place, name in labels.items():
        if (not isinstance(place, tuple) or len(place) != 2
                or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in place)
                or not (0 <= place[0] < n_layers and 0 <= place[1] < n_heads)):
            raise InputError(f"label key {place!r} is not a (layer, head) of this grid: "
                             f"layers 0–{n_layers - 1}, heads 0–{n_heads - 1}.")
        if not isinstance(name, str):
            raise InputError(f"the label of {place!r} must be a string, not {type(name).__name__}.")
    fig = make_subplots(rows=n_layers, cols=n_heads, horizontal_spacing=0.006, vertical_spacing=0.02,
                        row_titles=[f"L{layer}" for layer in range(n_layers)])
    for layer in range(n_layers):
        for head in range(n_heads):
            _check_attention(attentions[layer, head], length, length)
            name = labels.get((layer, head), "")
            fig.add_trace(go.Heatmap(
                z=attentions[layer, head], zmin=0, zmax=1, colorscale=SEQUENTIAL, showscale=False,
                hovertemplate=f"layer {layer}, head {head}{' · ' + html.escape(name) if name else ''}"
                "<br>query %{y} → key %{x}: %{z:.2f}<extra></extra>",
            ), row=layer + 1, col=head + 1)
            if name:
                fig.add_annotation(text=html.escape(name), showarrow=False, font={"size": 9, "color": "white"},
                                   bgcolor="rgba(0,0,0,0.6)", xref=f"x{layer * n_heads + head + 1} domain",
                                   yref=f"y{layer * n_heads + head + 1} domain", x=0.5, y=0.05)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    top = title_space(title_lines(title))
    height = top + 90 * n_layers + 10
    fig.update_layout(
        title=title_layout(title, height), height=height, margin={"l": 10, "r": 40, "t": top, "b": 10},
        meta={"alt": f"{title}: a grid of {n_layers} layers by {n_heads} heads of small attention maps"},
    )
    return fig


# ------------------------------------------------------------------ step by step


def attention_steps(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, tokens: Sequence[str], query: int,
    temperature: float = 1.0, causal: bool = False, title: str = "One query, step by step",
) -> go.Figure:
    """For one query token: scores q·k, scaled by √d, softmax (at a temperature), and the output.

    Four panels, left to right, with the real vectors of a model's head (see
    :func:`attnlab.extraction.head_internals`). Keys a causal model may not see are left out.
    """
    from plotly.subplots import make_subplots

    from attnlab.attention import softmax

    labels = escape_labels(tokens)
    visible = np.arange(len(tokens)) <= query if causal else np.ones(len(tokens), dtype=bool)
    keys = [label for label, shown in zip(labels, visible) if shown]
    scores = (k[visible] @ q[query])  # (T_visible,)
    scaled = scores / np.sqrt(q.shape[-1])
    weights = softmax(scaled, temperature=temperature)
    output = weights @ v[visible]  # (d_head,)
    # Panel titles short enough for a phone, where each panel is ~60 px wide.
    fig = make_subplots(rows=1, cols=4, column_widths=[0.24, 0.24, 0.24, 0.28], horizontal_spacing=0.04,
                        shared_yaxes=True, subplot_titles=(
                            "1 · q·k", f"2 · ÷ √{q.shape[-1]}", f"3 · softmax<br>T = {temperature:g}", "4 · output"))
    fig.update_annotations(font={"size": 12})
    positions = list(range(len(keys)))
    for col, values, fmt in ((1, scores, ".2f"), (2, scaled, ".2f"), (3, weights, ".3f")):
        fig.add_trace(go.Bar(x=values, y=positions, orientation="h", marker_color=HEAD_COLOURS[col - 1],
                             customdata=keys, hovertemplate="key %{customdata}: %{x:" + fmt + "}<extra></extra>",
                             showlegend=False), row=1, col=col)
        fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=keys, autorange="reversed",
                         showticklabels=col == 1, automargin=True, row=1, col=col)
        fig.update_xaxes(nticks=4, automargin=True, row=1, col=col)
    # Weights are drawn on a fixed 0–1 axis: comparable between temperatures, and a slider that
    # changes them (attention_steps_explorer) cannot leave a bar longer than its axis.
    fig.update_xaxes(range=[0, 1], tickvals=[0, 0.5, 1], row=1, col=3)
    # The output is one vector: drawn as a column of colours, one per dimension, beside the keys.
    fig.add_trace(go.Heatmap(z=[output], colorscale="RdBu", zmid=0, showscale=False, xaxis="x4", yaxis="y5",
                             hovertemplate="output dimension %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(yaxis5={"domain": [0.0, 1.0], "anchor": "x4", "visible": False})
    fig.update_xaxes(title_text="dimension", nticks=4, automargin=True, row=1, col=4)
    heading = f"{title}: query “{tokens[query]}”"
    top = title_space(title_lines(heading)) + 40  # 40: the panels' titles, in two lines
    height = top + 24 * len(keys) + 60
    fig.update_layout(
        title=title_layout(heading, height), height=height, margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"Four panels for the query {tokens[query]}: raw scores, scaled scores, softmax weights "
                     "and the output vector"},
    )
    return fig


# ------------------------------------------------------------------ positions and masks


def _position_grid(z: np.ndarray, x_title: str, title: str, alt: str, height: int, colorscale: str,
                   colorbar: str, hover: str, **value_range) -> go.Figure:
    """A heatmap with positions down the rows: the shared frame of the position figures."""
    # float32 in the page: half the bytes of float64, and far more digits than a colour shows.
    fig = go.Figure(go.Heatmap(z=np.asarray(z, dtype=np.float32), colorscale=colorscale,
                               colorbar={"title": {"text": colorbar}, "thickness": 14},
                               hovertemplate=hover + "<extra></extra>", **value_range))
    fig.update_xaxes(title_text=x_title, automargin=True)
    fig.update_yaxes(title_text="position", autorange="reversed", automargin=True)
    top = title_space(title_lines(title))
    fig.update_layout(title=title_layout(title, height), height=height, margin={"t": top, "l": 10, "r": 10, "b": 10},
                      meta={"alt": alt})
    return fig


def positional_heatmap(encoding: np.ndarray, title: str = "Sinusoidal positional encoding") -> go.Figure:
    """Positions on rows, encoding dimensions on columns, values in [-1, 1] on a diverging scale."""
    return _position_grid(encoding, "dimension", title, height=420, colorscale="RdBu", zmin=-1, zmax=1,
                          colorbar="value", hover="position %{y}, dimension %{x}: %{z:.3f}",
                          alt=f"{title}: {encoding.shape[0]} positions by {encoding.shape[1]} dimensions")


def similarity_matrix(encoding: np.ndarray, title: str = "How similar two positions are") -> go.Figure:
    """Dot products between every pair of position vectors: bright near the diagonal, darker far from it."""
    return _position_grid(encoding @ encoding.T, "position", title, height=440, colorscale=SEQUENTIAL,
                          colorbar="p·q", hover="positions %{y} and %{x}: %{z:.2f}",
                          alt=f"{title}: dot products of {len(encoding)} positions with each other")


def masked_scores(scores: np.ndarray, mask: np.ndarray, tokens: Sequence[str], title: str = "Raw and masked") -> go.Figure:
    """Raw scores above the attention weights after masking (grey: masked).

    One above the other, each as wide as the page: side by side, a phone would give each
    panel too little width for the keys' labels.
    """
    from plotly.subplots import make_subplots

    from attnlab.attention import softmax

    labels = escape_labels(tokens)
    mask = np.asarray(mask, dtype=bool)
    weights = softmax(np.where(mask, scores, -np.inf))
    positions = list(range(len(labels)))
    fig = make_subplots(rows=2, cols=1, subplot_titles=("raw scores", "weights after the mask"),
                        shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(go.Heatmap(z=scores, colorscale="RdBu", zmid=0, showscale=False,
                             hovertemplate="score %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.where(mask, weights, np.nan), colorscale=SEQUENTIAL, zmin=0, zmax=1,
                             colorbar={"title": {"text": "weight"}, "thickness": 14, "len": 0.46, "y": 0,
                                       "yanchor": "bottom"},
                             hovertemplate="weight %{z:.3f}<extra></extra>"), row=2, col=1)
    for row in (1, 2):  # keys along the bottom, where their labels may tilt (see _token_axes)
        fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=labels, automargin=True, row=row, col=1)
        fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=labels, autorange="reversed",
                         automargin=True, title={"text": "query", "font": {"size": 12}}, row=row, col=1)
    fig.update_xaxes(title={"text": "key", "font": {"size": 12}}, row=2, col=1)
    fig.update_annotations(font={"size": 12})
    top = title_space(title_lines(title)) + 24  # 24: the first panel's title
    height = top + 2 * 24 * len(labels) + 110
    fig.update_layout(title=title_layout(title, height), height=height, plot_bgcolor=MASKED_COLOUR,
                      margin={"t": top, "l": 10, "r": 10, "b": 10},
                      meta={"alt": f"{title}: raw scores and, below them, masked attention weights (grey is masked)"})
    return fig


# ------------------------------------------------------------------ chapter 1: chain vs web


def chain_vs_web(tokens: Sequence[str], source: int, target: int) -> go.Figure:
    """The same sentence read by a recurrent chain and by attention, switchable with two buttons.

    The path from token ``source`` to token ``target`` is drawn in orange: in the chain it
    passes through every token between them, in the web it is one direct line.
    """
    labels = escape_labels(_check_tokens(tokens))
    n = len(labels)
    whole = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in (source, target))
    if not (whole and 0 <= source < n and 0 <= target < n and source != target):
        raise InputError(f"Pick two different words of the sentence (positions 0 to {n - 1}).")
    xs = list(range(n))
    # The words are the x axis's tick labels, not text beside the points: plotly tilts tick
    # labels when they do not fit side by side (a phone), where text would run together.
    word_trace = go.Scatter(x=xs, y=[0] * n, mode="markers", text=labels,
                            marker={"size": 14, "color": "#56B4E9", "line": {"color": "#0072B2", "width": 2}},
                            hovertemplate="%{text}, position %{x}<extra></extra>", showlegend=False)
    low, high = sorted((source, target))

    def arcs(pairs) -> tuple[list, list]:  # one arc per pair, 1 high for the widest; short arcs still show
        xs_, ys_ = [], []
        for i, j in pairs:
            t = np.linspace(0, 1, 12 if j - i > 1 else 15)
            xs_ += list(i + (j - i) * t) + [None]
            ys_ += list(np.sqrt((j - i) / (n - 1)) * np.sin(np.pi * t)) + [None]
        return xs_, ys_

    # The chain links each token to the next only: one hop per step.
    chain_x, chain_y = arcs((i, i + 1) for i in range(n - 1))
    chain = go.Scatter(x=chain_x, y=chain_y, mode="lines", line={"color": "#999999", "width": 3}, hoverinfo="skip",
                       name="recurrent chain: one step per token")
    path_x, path_y = arcs((i, i + 1) for i in range(low, high))
    chain_path = go.Scatter(x=path_x, y=path_y, mode="lines", line={"color": "#D55E00", "width": 5}, hoverinfo="skip",
                            name=f"path {labels[source]} → {labels[target]}: {high - low} steps")
    arc_x, arc_y = arcs((i, j) for i in range(n) for j in range(i + 1, n))
    web = go.Scatter(x=arc_x, y=arc_y, mode="lines", line={"color": "#999999", "width": 1}, opacity=0.6,
                     hoverinfo="skip", name="attention web: every pair, one step", visible=False)
    t = np.linspace(0, 1, 30)
    web_path = go.Scatter(x=list(low + (high - low) * t), y=list(np.sqrt((high - low) / (n - 1)) * np.sin(np.pi * t)),
                          mode="lines",
                          line={"color": "#D55E00", "width": 6}, hoverinfo="skip", visible=False,
                          name=f"path {labels[source]} → {labels[target]}: 1 step")
    fig = go.Figure([chain, chain_path, web, web_path, word_trace])
    chain_title = f"Recurrent chain: “{labels[target]}” hears of “{labels[source]}” only after {high - low} steps"
    web_title = f"Attention web: “{labels[target]}” looks at “{labels[source]}” directly, in 1 step"
    buttons = [
        {"label": "recurrent chain", "method": "update",
         "args": [{"visible": [True, True, False, False, True]}, {"title.text": wrap(chain_title)}]},
        {"label": "attention web", "method": "update",
         "args": [{"visible": [False, False, True, True, True]}, {"title.text": wrap(web_title)}]},
    ]
    lines = title_lines(chain_title, web_title)
    menu, _, row = menu_row({"type": "buttons", "direction": "right", "buttons": buttons, "showactive": True}, None, 8)
    top = title_space(lines) + row + 8
    height = top + 140 + 100  # the arcs' plot, then the words (tilted on a phone) and the legend below
    fig.update_layout(
        title=title_layout(chain_title, height, lines), height=height, plot_bgcolor="white", updatemenus=[menu],
        # The range holds the highest arc (height 1) and the points' markers.
        xaxis={"range": [-0.6, n - 0.4], "tickmode": "array", "tickvals": xs, "ticktext": labels, "showgrid": False,
               "zeroline": False, "showline": False, "ticks": "", "automargin": True},
        yaxis={"visible": False, "range": [-0.15, 1.06]},
        legend=LEGEND_BELOW, margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"The sentence “{' '.join(tokens)}” as a chain of {n} tokens and, behind a button, as a web "
                     "in which every token links to every other; the path between two distant words is highlighted."},
    )
    return fig


def race_chart(lengths: Sequence[int], rnn_ms: Sequence[float], attention_ms: Sequence[float], device: str) -> go.Figure:
    """Measured time of a recurrent loop and of one attention step against sequence length, log–log."""
    lengths = list(lengths)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lengths, y=list(rnn_ms), mode="lines+markers", name="recurrent loop (T steps)",
                             line={"color": "#0072B2", "width": 3}, marker={"symbol": "circle", "size": 9},
                             hovertemplate="T = %{x}: %{y:.2f} ms<extra>recurrent</extra>"))
    fig.add_trace(go.Scatter(x=lengths, y=list(attention_ms), mode="lines+markers", name="attention (1 step, T² pairs)",
                             line={"color": "#D55E00", "width": 3, "dash": "dash"}, marker={"symbol": "square", "size": 9},
                             hovertemplate="T = %{x}: %{y:.2f} ms<extra>attention</extra>"))
    # Ticks at lengths at least 3.5× apart: on a phone's log axis 1024, 2048 and 4096 would collide.
    ticks = [lengths[0]] if lengths else []
    for length in lengths[1:]:
        if length >= 3.5 * ticks[-1]:
            ticks.append(length)
    fig.update_xaxes(type="log", title_text="sequence length T (tokens)", tickvals=ticks, ticktext=[str(n) for n in ticks],
                     automargin=True)
    fig.update_yaxes(type="log", title_text="median time (ms, log scale)", automargin=True)
    heading = f"Measured on this machine ({device})"
    fig.update_layout(
        title=title_layout(heading, 440), height=440, hovermode="x unified",
        legend=LEGEND_BELOW, margin={"t": title_space(title_lines(heading)), "l": 10, "r": 10, "b": 10},
        meta={"alt": "Log–log chart of measured milliseconds against sequence length for a recurrent loop and for one "
                     "attention step; the recurrent line rises in proportion to T, the attention line eventually "
                     "rises with T squared."},
    )
    return fig


# ------------------------------------------------------------------ chapter 2: embeddings


def embedding_scatter(points: np.ndarray, words: Sequence[str], groups: Sequence[str], explained: Sequence[float],
                      title: str = "Word embeddings, projected to 2-D") -> go.Figure:
    """2-D projection of embeddings, one colour and marker per group, the word written beside its point.

    Each word goes on the side of its point where it overlaps no other word or point (see
    :func:`place_labels`); the axes' ranges hold every word.
    """
    points = np.asarray(points, dtype=float)
    labels = escape_labels(words)
    positions, x_range, y_range = place_labels(points, [str(w) for w in words])
    fig = go.Figure()
    symbols = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon"]
    for index, group in enumerate(dict.fromkeys(groups)):
        rows = [i for i, g in enumerate(groups) if g == group]
        fig.add_trace(go.Scatter(
            x=points[rows, 0], y=points[rows, 1], mode="markers+text", name=html.escape(group),
            text=[labels[i] for i in rows], textposition=[positions[i] for i in rows], textfont={"size": 12},
            marker={"size": 11, "color": HEAD_COLOURS[index % len(HEAD_COLOURS)], "symbol": symbols[index % len(symbols)]},
            hovertemplate="%{text}<extra>" + html.escape(group) + "</extra>"))
    fig.update_xaxes(title={"text": f"first principal direction ({100 * explained[0]:.0f}% of variance)",
                            "font": {"size": 12}}, zeroline=False, range=x_range, automargin=True)
    fig.update_yaxes(title={"text": f"second principal direction ({100 * explained[1]:.0f}%)", "font": {"size": 12}},
                     zeroline=False, range=y_range, automargin=True)
    top = title_space(title_lines(title))
    fig.update_layout(title=title_layout(title, 520), height=520, plot_bgcolor="white", legend=LEGEND_BELOW,
                      margin={"t": top + 4, "l": 10, "r": 10, "b": 10},
                      meta={"alt": f"{title}: {len(labels)} words as points, coloured by group: "
                                   + ", ".join(dict.fromkeys(groups))})
    return fig


# ------------------------------------------------------------------ chapter 4: softmax, scaling, steps


def normalise_vs_softmax(examples: Mapping[str, Sequence[float]], labels: Sequence[str]) -> go.Figure:
    """Bars of 'divide by the sum' next to softmax for several score vectors, picked from a menu."""
    from attnlab.attention import softmax

    names = list(examples)
    safe = escape_labels(labels)

    def both(scores):
        scores = np.asarray(scores, dtype=float)
        total = scores.sum()
        divided = scores / total if total != 0 else np.full_like(scores, np.nan)
        return divided, softmax(scores)

    first_divided, first_soft = both(examples[names[0]])
    fig = go.Figure([
        go.Bar(x=safe, y=first_divided, name="score ÷ sum of scores", marker_color="#E69F00",
               hovertemplate="%{x}: %{y:.3f}<extra>divide by the sum</extra>"),
        go.Bar(x=safe, y=first_soft, name="softmax", marker_color="#0072B2", marker_pattern_shape="/",
               hovertemplate="%{x}: %{y:.3f}<extra>softmax</extra>"),
    ])
    buttons = []
    for name in names:
        divided, soft = both(examples[name])
        scores = ", ".join(f"{s:g}" for s in examples[name])
        buttons.append({"label": html.escape(name), "method": "update",
                        "args": [{"y": [divided, soft]}, {"title.text": wrap(f"scores ({scores})")}]})
    headings = [f"scores ({', '.join(f'{s:g}' for s in examples[name])})" for name in names]
    lines = title_lines(*headings)
    menu, _, row = menu_row({"buttons": buttons}, None, 8)
    top = title_space(lines) + row + 8
    fig.update_layout(
        barmode="group", height=420, title=title_layout(headings[0], 420, lines), updatemenus=[menu],
        yaxis={"title": {"text": "weight"}, "zeroline": True, "zerolinecolor": "#444", "automargin": True},
        legend=LEGEND_BELOW, margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": "Grouped bars comparing, for each word, its weight when scores are divided by their sum and "
                     "when they go through a softmax; a menu switches between example score vectors."},
    )
    return fig


def scaling_chart(dims: Sequence[int], unscaled_var: Sequence[float], scaled_var: Sequence[float],
                  unscaled_max: Sequence[float], scaled_max: Sequence[float]) -> go.Figure:
    """Left: variance of q·k against d_k, with and without ÷√d_k. Right: the largest softmax weight."""
    from plotly.subplots import make_subplots

    # Two-line panel titles: a phone gives each panel ~130 px.
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=(
        "variance of q·k", "largest softmax<br>weight (mean)"))
    fig.update_annotations(font={"size": 13})
    dims = list(dims)
    for col, (raw, scaled, fmt) in enumerate(((unscaled_var, scaled_var, ".1f"), (unscaled_max, scaled_max, ".3f")), 1):
        fig.add_trace(go.Scatter(x=dims, y=list(raw), name="q·k", mode="lines+markers", showlegend=col == 1,
                                 line={"color": "#D55E00", "width": 3}, marker={"symbol": "square", "size": 8},
                                 hovertemplate="d_k = %{x}: %{y:" + fmt + "}<extra>q·k</extra>"), row=1, col=col)
        fig.add_trace(go.Scatter(x=dims, y=list(scaled), name="q·k / √d_k", mode="lines+markers", showlegend=col == 1,
                                 line={"color": "#0072B2", "width": 3, "dash": "dash"}, marker={"size": 8},
                                 hovertemplate="d_k = %{x}: %{y:" + fmt + "}<extra>scaled</extra>"), row=1, col=col)
        fig.update_xaxes(type="log", title_text="d_k", tickvals=dims, ticktext=[str(d) for d in dims], automargin=True,
                         row=1, col=col)
    fig.update_yaxes(type="log", automargin=True, row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], automargin=True, row=1, col=2)
    fig.update_layout(height=420, legend=LEGEND_BELOW, margin={"t": MODEBAR_BAND + 44, "l": 10, "r": 10, "b": 10},
                      meta={"alt": "Two charts against the key size d_k: the variance of raw dot products grows in "
                                   "proportion to d_k while the scaled one stays near 1; without scaling the largest "
                                   "softmax weight approaches 1 (saturation), with scaling it stays moderate."})
    return fig


def attention_steps_explorer(q: np.ndarray, k: np.ndarray, v: np.ndarray, tokens: Sequence[str],
                             temperatures: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
                             title: str = "One query, step by step") -> go.Figure:
    """:func:`attention_steps` for every query of a bidirectional head, with a query menu and a temperature slider.

    Works without a kernel: the menu shows one query's traces, the slider restyles the softmax
    and output traces of every query at once, so the two controls stay independent.
    """
    from attnlab.attention import softmax

    n = len(tokens)
    start = list(temperatures).index(1.0) if 1.0 in temperatures else 0
    figures = [attention_steps(q, k, v, tokens, query, temperature=temperatures[start], title=title) for query in range(n)]
    per_query = len(figures[0].data)  # 3 bar charts and 1 output heatmap
    traces = [trace.update(visible=query == 0) for query, figure in enumerate(figures) for trace in figure.data]
    fig = go.Figure(data=traces, layout=figures[0].layout)
    scaled = (q @ k.T) / np.sqrt(q.shape[-1])  # (T, T)
    moving = [query * per_query + 2 for query in range(n)] + [query * per_query + 3 for query in range(n)]
    frames, steps = [], []
    for temperature in temperatures:
        weights = softmax(scaled, temperature=temperature)  # (T, T): one row per query
        name = f"T={temperature:g}"
        frames.append(go.Frame(name=name, traces=moving, data=[go.Bar(x=row) for row in weights]
                               + [go.Heatmap(z=[row @ v]) for row in weights]))
        steps.append({"label": f"{temperature:g}", "method": "animate", "args": [
            [name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}]})
    fig.frames = frames
    fig.layout.annotations[2].text = "3 · softmax"  # its temperature is the slider's
    safe = escape_labels(tokens)
    headings = [f"{title}: query “{token}”" for token in tokens]  # the temperature is the slider's
    buttons = [{"label": safe[query], "method": "update", "args": [
        {"visible": [i // per_query == query for i in range(n * per_query)]},
        {"title.text": wrap(headings[query])}]} for query in range(n)]
    # Title, then the query menu in a row of its own, the panels' titles, the panels; below
    # them their axes and the temperature slider.
    lines = title_lines(*headings)
    menu, labels, row = menu_row({"buttons": buttons, "active": 0}, "query:", 24)
    top = title_space(lines) + row + 24
    bottom = 50 + 90  # tick labels and the axis title, then the slider
    height = top + 24 * n + bottom
    fig.update_layout(
        title=title_layout(headings[0], height, lines), updatemenus=[menu],
        annotations=list(fig.layout.annotations) + labels,
        sliders=[{"steps": steps, "active": start,
                  "currentvalue": {"prefix": "softmax temperature T = ", "font": {"size": 13}},
                  "x": 0, "xanchor": "left", "len": 1, "y": 0, "yanchor": "top", "pad": {"t": 50, "l": 10, "r": 10}}],
        height=height, margin={"t": top, "b": bottom, "l": 10, "r": 10},
        meta={"alt": f"For each query token of “{' '.join(tokens)}” (menu), four panels: raw scores, scaled scores, "
                     "softmax weights and the output vector; a slider changes the softmax temperature."},
    )
    return fig


def influence_chart(recurrent: Sequence[float], attention: Sequence[float]) -> go.Figure:
    """Gradient norm of the last output with respect to each earlier token, by distance (log scale)."""
    distances = list(range(len(recurrent)))
    floor = 1e-12  # a log axis cannot show 0: tiny values are drawn at the floor
    fig = go.Figure([
        go.Scatter(x=distances, y=[max(v, floor) for v in recurrent], name="recurrent network", mode="lines+markers",
                   line={"color": "#0072B2", "width": 3}, hovertemplate="distance %{x}: %{y:.2e}<extra>recurrent</extra>"),
        go.Scatter(x=distances, y=[max(v, floor) for v in attention], name="attention", mode="lines+markers",
                   line={"color": "#D55E00", "width": 3, "dash": "dash"}, marker={"symbol": "square"},
                   hovertemplate="distance %{x}: %{y:.2e}<extra>attention</extra>"),
    ])
    fig.update_xaxes(title_text="tokens back from the last one", automargin=True)
    fig.update_yaxes(type="log", title={"text": "influence |∂ output / ∂ token| (log)", "font": {"size": 13}},
                     exponentformat="power", automargin=True)
    heading = "Measured: how much the last output depends on each earlier token"
    fig.update_layout(height=440, legend=LEGEND_BELOW, title=title_layout(heading, 440),
                      margin={"t": title_space(title_lines(heading)), "l": 10, "r": 10, "b": 10},
                      meta={"alt": "Log-scale chart: a recurrent network's dependence on earlier tokens falls by orders "
                                   "of magnitude with distance, while attention's stays at the same level."})
    return fig


# ------------------------------------------------------------------ chapter 3: positions


def position_similarity_choices(encodings: Mapping[str, np.ndarray], title: str = "Cosine similarity of two positions") -> go.Figure:
    """Cosine similarity between every pair of position vectors, for several encodings picked from a menu."""
    def cosine(encoding):
        unit = encoding / np.linalg.norm(encoding, axis=1, keepdims=True)
        return unit @ unit.T  # (P, P)

    names = list(encodings)
    fig = _position_grid(cosine(encodings[names[0]]), "position", f"{title}: {names[0]}", height=480,
                         colorscale="RdBu_r", zmin=-1, zmax=1, colorbar="cosine",
                         hover="positions %{y} and %{x}: %{z:.2f}",
                         alt=f"{title}: a heatmap of position against position, bright red on the diagonal; "
                             "a menu switches between " + ", ".join(names))
    buttons = [{"label": html.escape(name), "method": "update",
                # Menu arguments are written as JSON text: three decimals keep them small.
                "args": [{"z": [np.round(cosine(encodings[name]), 3)]}, {"title.text": wrap(f"{title}:\n{name}")}]}
               for name in names]
    # No square cells (scaleanchor): on a phone they would leave half the figure empty.
    lines = title_lines(*(f"{title}:\n{name}" for name in names))
    menu, _, row = menu_row({"buttons": buttons}, None, 8)
    top = title_space(lines) + row + 8
    height = fig.layout.height + top - fig.layout.margin.t
    fig.update_layout(title=title_layout(f"{title}:\n{names[0]}", height, lines), height=height, margin={"t": top},
                      updatemenus=[menu])
    return fig
