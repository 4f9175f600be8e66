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
) -> go.Figure:
    """Heatmap of one attention matrix: queries on rows, keys on columns, exact weight on hover."""
    queries = escape_labels(query_tokens)
    keys = escape_labels(query_tokens if key_tokens is None else key_tokens)
    weights = _check_attention(weights, len(queries), len(keys))
    fig = go.Figure(_heatmap_trace(weights, queries, keys))
    _token_axes(fig, queries, keys)
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
