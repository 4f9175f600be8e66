"""Figure builders: pure functions from data to a Plotly figure.

The same builders serve the static book pages and the live widgets. Token labels are
HTML-escaped (Plotly labels accept some HTML tags), and axes are numeric with tick
labels, so a word that occurs twice keeps two rows instead of being merged.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.attention import rows_sum_to_one

#: Perceptually uniform and readable with the common colour-vision deficiencies.
SEQUENTIAL = "Viridis"


def escape_labels(tokens: Sequence[str]) -> list[str]:
    """Tokens as safe label text: no tag in a sentence can become markup."""
    return [html.escape(str(token), quote=True) for token in tokens]


MASKED_COLOUR = "#c8c8c8"  # masked cells: grey, never confused with the dark end of Viridis (weight 0)


def _check_attention(weights: np.ndarray, n_queries: int, n_keys: int) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (n_queries, n_keys):
        raise ValueError(f"weights have shape {weights.shape}, tokens give ({n_queries}, {n_keys})")
    if not rows_sum_to_one(weights):
        raise ValueError("each row of an attention matrix must be a distribution that sums to 1")
    return weights


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
        colorbar={"title": {"text": "weight"}},
        hovertemplate="query <b>%{customdata[0]}</b> → key <b>%{customdata[1]}</b>"
        "<br>weight %{z:.3f}<extra></extra>",
    )


def _token_axes(fig: go.Figure, queries: list[str], keys: list[str]) -> None:
    fig.update_xaxes(
        title_text="key (attended to)", tickmode="array",
        tickvals=list(range(len(keys))), ticktext=keys, side="top",
    )
    fig.update_yaxes(
        title_text="query (attending)", tickmode="array",
        tickvals=list(range(len(queries))), ticktext=queries, autorange="reversed",
    )


def attention_heatmap(
    weights: np.ndarray,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    title: str = "Attention weights",
    alt: str | None = None,
    mask: np.ndarray | None = None,
) -> go.Figure:
    """Heatmap of one attention matrix: queries on rows, keys on columns, exact weight on hover.

    ``mask`` (True = may attend) greys out the cells a query may not see, so that "masked"
    never looks like "weight 0".
    """
    queries = escape_labels(query_tokens)
    keys = escape_labels(query_tokens if key_tokens is None else key_tokens)
    weights = _check_attention(weights, len(queries), len(keys))
    trace = _heatmap_trace(weights, queries, keys)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if np.any(weights[~mask] > 1e-6):
            raise ValueError("a masked cell has a non-zero weight: the mask does not match these weights")
        trace.z = np.where(mask, weights, np.nan)
        trace.hovertemplate = trace.hovertemplate.replace("weight %{z:.3f}", "weight %{z:.3f} (grey: masked)")
    fig = go.Figure(trace)
    _token_axes(fig, queries, keys)
    if mask is not None:
        fig.update_layout(plot_bgcolor=MASKED_COLOUR)
    fig.update_layout(
        title={"text": html.escape(title)},
        height=120 + 48 * len(queries),
        margin={"t": 110, "l": 90, "r": 20, "b": 20},
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
                {"title.text": html.escape(f"{title} · {name}")},
            ],
        }
        for name in names
    ]
    menu = {
        "buttons": buttons,
        "direction": "down",
        "showactive": True,
        # Top right, above the key labels: clear of the left-aligned title.
        "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom", "pad": {"b": 60},
    }
    fig.update_layout(updatemenus=[menu], title={"x": 0.0, "xanchor": "left", "y": 0.99, "yanchor": "top"})
    fig.update_layout(margin={"t": 150})
    if menu_label:
        fig.add_annotation(
            text=html.escape(menu_label), x=1.0, xref="paper", xanchor="right",
            y=1.0, yref="paper", yanchor="bottom", yshift=100, showarrow=False,
        )
    return fig


# ------------------------------------------------------------------ head view


#: Okabe–Ito: eight colours distinguishable with the common colour-vision deficiencies.
HEAD_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


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
    attention = np.asarray(attention, dtype=float)
    n_heads, length, _ = attention.shape
    labels = escape_labels(tokens)
    heads = list(range(n_heads)) if heads is None else list(heads)
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
    for side, x, anchor in (("queries", -0.02, "right"), ("keys", 1.02, "left")):
        fig.add_trace(go.Scatter(
            x=[x] * length, y=list(range(length)), mode="text", text=labels, textposition=f"middle {anchor}",
            hoverinfo="skip", showlegend=False, name=side,
        ))
    fig.update_xaxes(visible=False, range=[-0.45, 1.45])
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(
        title={"text": html.escape(title)}, height=140 + 26 * length, plot_bgcolor="white",
        legend={"title": {"text": "click to hide"}}, margin={"l": 10, "r": 10, "t": 60, "b": 10},
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

    attentions = np.asarray(attentions, dtype=float)
    n_layers, n_heads, length, _ = attentions.shape
    labels = labels or {}
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
    fig.update_layout(
        title={"text": html.escape(title)}, height=60 + 90 * n_layers, margin={"l": 10, "r": 40, "t": 60, "b": 10},
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
    fig = make_subplots(rows=1, cols=4, column_widths=[0.22, 0.22, 0.22, 0.34], subplot_titles=(
        "1 · scores q·k", f"2 · ÷ √d = {np.sqrt(q.shape[-1]):.2f}", f"3 · softmax (T = {temperature:g})",
        "4 · output = Σ weight × v"))
    positions = list(range(len(keys)))
    for col, values, fmt in ((1, scores, ".2f"), (2, scaled, ".2f"), (3, weights, ".3f")):
        fig.add_trace(go.Bar(x=values, y=positions, orientation="h", marker_color=HEAD_COLOURS[col - 1],
                             customdata=keys, hovertemplate="key %{customdata}: %{x:" + fmt + "}<extra></extra>",
                             showlegend=False), row=1, col=col)
        fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=keys, autorange="reversed", row=1, col=col)
    fig.add_trace(go.Heatmap(z=[output], colorscale="RdBu", zmid=0, showscale=False,
                             hovertemplate="dimension %{x}: %{z:.3f}<extra></extra>"), row=1, col=4)
    fig.update_yaxes(visible=False, row=1, col=4)
    fig.update_layout(
        title={"text": html.escape(f"{title}: query “{tokens[query]}”")}, height=160 + 22 * len(keys),
        margin={"t": 90, "l": 80, "r": 10, "b": 30},
        meta={"alt": f"Four panels for the query {tokens[query]}: raw scores, scaled scores, softmax weights "
                     "and the output vector"},
    )
    return fig


# ------------------------------------------------------------------ positions and masks


def positional_heatmap(encoding: np.ndarray, title: str = "Sinusoidal positional encoding") -> go.Figure:
    """Positions on rows, encoding dimensions on columns, values in [-1, 1] on a diverging scale."""
    fig = go.Figure(go.Heatmap(z=encoding, colorscale="RdBu", zmin=-1, zmax=1, colorbar={"title": {"text": "value"}},
                               hovertemplate="position %{y}, dimension %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="dimension")
    fig.update_yaxes(title_text="position", autorange="reversed")
    fig.update_layout(title={"text": html.escape(title)}, height=420,
                      meta={"alt": f"{title}: {encoding.shape[0]} positions by {encoding.shape[1]} dimensions"})
    return fig


def similarity_matrix(encoding: np.ndarray, title: str = "How similar two positions are") -> go.Figure:
    """Dot products between every pair of position vectors: bright near the diagonal, darker far from it."""
    similarity = encoding @ encoding.T
    fig = go.Figure(go.Heatmap(z=similarity, colorscale=SEQUENTIAL, colorbar={"title": {"text": "p·q"}},
                               hovertemplate="positions %{y} and %{x}: %{z:.2f}<extra></extra>"))
    fig.update_xaxes(title_text="position")
    fig.update_yaxes(title_text="position", autorange="reversed")
    fig.update_layout(title={"text": html.escape(title)}, height=440,
                      meta={"alt": f"{title}: dot products of {len(encoding)} positions with each other"})
    return fig


def masked_scores(scores: np.ndarray, mask: np.ndarray, tokens: Sequence[str], title: str = "Raw and masked") -> go.Figure:
    """Raw scores next to the attention weights after masking (grey: masked), side by side."""
    from plotly.subplots import make_subplots

    from attnlab.attention import softmax

    labels = escape_labels(tokens)
    mask = np.asarray(mask, dtype=bool)
    weights = softmax(np.where(mask, scores, -np.inf))
    positions = list(range(len(labels)))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("scores before the mask", "weights after mask + softmax"),
                        horizontal_spacing=0.12)
    fig.add_trace(go.Heatmap(z=scores, colorscale="RdBu", zmid=0, showscale=False,
                             hovertemplate="score %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.where(mask, weights, np.nan), colorscale=SEQUENTIAL, zmin=0, zmax=1,
                             hovertemplate="weight %{z:.3f}<extra></extra>"), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=labels, side="top", row=1, col=col)
        fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=labels, autorange="reversed", row=1, col=col)
    fig.update_layout(title={"text": html.escape(title)}, height=160 + 36 * len(labels), plot_bgcolor=MASKED_COLOUR,
                      margin={"t": 120},
                      meta={"alt": f"{title}: raw scores and, beside them, masked attention weights (grey is masked)"})
    return fig
